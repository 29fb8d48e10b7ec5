// The dashboard is built into the directory build.rs names (MILLSTREAM_UI_OUT) and embedded in
// the millstream binary; `npm run build` alone writes dist/.
import { defineConfig } from "vite";
import vue from "@vitejs/plugin-vue";

export default defineConfig({
  plugins: [vue()],
  base: "/",
  build: {
    outDir: process.env.MILLSTREAM_UI_OUT ?? "dist",
    emptyOutDir: true,
    // Hashed file names: served with a year of caching; index.html is never cached.
    assetsDir: "assets",
    chunkSizeWarningLimit: 1200,
  },
  server: {
    // `npm run dev` against a running `millstream demo`.
    proxy: { "/api": "http://127.0.0.1:8080", "/metrics": "http://127.0.0.1:8080" },
  },
});
