// Dashboard responsiveness under load (a benchmark, not a test): `millstream demo --devices 50`
// (50 machines × ~20 items at 10 Hz, ~10,000 samples/s through the engine), each page open in
// headless Chromium for a while. Measured in the page: frames drawn per second, long tasks
// (main thread busy > 50 ms), the JS heap at the start and the end, and how long a click takes
// to show its effect. Results: docs/benchmarks.md.
//
//   MILLSTREAM_BIN=target/release/millstream node ui/bench/load.mjs   # LOAD_SECONDS=60 LOAD_DEVICES=50
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";

const bin = process.env.MILLSTREAM_BIN ?? new URL("../../target/release/millstream", import.meta.url).pathname;
const seconds = Number(process.env.LOAD_SECONDS ?? 60);
const devices = Number(process.env.LOAD_DEVICES ?? 50);

const port = await new Promise((resolve) => {
  const s = createServer();
  s.listen(0, "127.0.0.1", () => {
    const p = s.address().port;
    s.close(() => resolve(p));
  });
});
const base = `http://127.0.0.1:${port}`;
const demo = spawn(bin, ["demo", "--devices", String(devices), "--http", `127.0.0.1:${port}`], {
  cwd: mkdtempSync(join(tmpdir(), "millstream-load-")),
  stdio: ["ignore", "pipe", "inherit"],
});
await new Promise((resolve, reject) => {
  demo.stdout.on("data", (c) => c.toString().includes("open http://") && resolve());
  demo.on("exit", (code) => reject(new Error(`demo exited ${code}`)));
});
// Let every machine register and stream.
await new Promise((r) => setTimeout(r, 10_000));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
  args: ["--no-sandbox", "--enable-precise-memory-info", "--disable-background-networking"],
});

async function measure(path, prepare, click) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 720 } });
  const page = await context.newPage();
  await page.addInitScript(() => {
    window.__long = [];
    new PerformanceObserver((list) => list.getEntries().forEach((e) => window.__long.push(e.duration))).observe({ entryTypes: ["longtask"] });
    window.__frames = 0;
    const tick = () => {
      window.__frames += 1;
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
  await page.goto(`${base}/${path}`);
  await prepare(page);
  const start = await page.evaluate(() => ({ frames: window.__frames, heap: performance.memory.usedJSHeapSize, t: performance.now(), long: window.__long.length }));
  await new Promise((r) => setTimeout(r, seconds * 1000));
  const clickMs = click ? await click(page) : null;
  const end = await page.evaluate(() => ({ frames: window.__frames, heap: performance.memory.usedJSHeapSize, t: performance.now(), long: window.__long.slice() }));
  await context.close();
  const long = end.long.slice(start.long);
  return {
    page: path,
    fps: ((end.frames - start.frames) / ((end.t - start.t) / 1000)).toFixed(1),
    long_tasks: long.length,
    long_task_ms_total: Math.round(long.reduce((a, b) => a + b, 0)),
    long_task_ms_max: Math.round(Math.max(0, ...long)),
    heap_mb_start: (start.heap / 1e6).toFixed(1),
    heap_mb_end: (end.heap / 1e6).toFixed(1),
    click_to_effect_ms: clickMs,
  };
}

// Time from a click to its visible effect, measured inside the page.
async function clickPause(page) {
  return page.evaluate(async () => {
    const button = [...document.querySelectorAll("button")].find((b) => b.getAttribute("aria-pressed") !== null);
    const before = button.textContent;
    const t0 = performance.now();
    button.click();
    while (button.textContent === before) await new Promise((r) => requestAnimationFrame(r));
    return Math.round(performance.now() - t0);
  });
}

const results = [];
results.push(await measure("#/", async (page) => page.locator("table").first().waitFor(), null));
results.push(
  await measure(
    "#/display",
    async (page) => {
      await page.locator("input[type=checkbox]").first().waitFor({ timeout: 20_000 });
      // Every item of the machine at once: ~20 series at 10 Hz, plus the text timeline.
      for (const box of await page.locator("input[type=checkbox]").all()) await box.check();
      await page.locator("select").nth(1).selectOption("3600"); // an hour span: the largest buffers
    },
    clickPause,
  ),
);
results.push(await measure("#/analysis", async (page) => page.locator("select").nth(3).selectOption("1s").catch(() => {}), null));
console.table(results);
console.log(JSON.stringify({ devices, seconds, results }));
await browser.close();
demo.kill("SIGINT");
