// Unit tests only; the browser tests in e2e/ run with `npm run test:browser`.
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["src/**/*.test.ts"] },
});
