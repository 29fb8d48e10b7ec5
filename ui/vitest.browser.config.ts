// Browser tests: a real Chromium (Debian's, driven by playwright-core) against a real
// `millstream demo`. MILLSTREAM_BIN names the binary (scripts/test builds it).
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: { include: ["e2e/**/*.test.ts"], testTimeout: 60_000, hookTimeout: 90_000 },
});
