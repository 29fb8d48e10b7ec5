// The dashboard in a real browser, against `millstream demo` (embedded broker, 3 simulated
// machines): the Overview lists the machines and the stores, the Display page draws live
// values pushed over SSE, the language switches, and an unreachable API shows an error.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRequire } from "node:module";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chromium, type Browser, type Page } from "playwright-core";

const bin = process.env.MILLSTREAM_BIN ?? join(__dirname, "../../target/debug/millstream");
const chromiumPath = process.env.CHROMIUM ?? "/usr/bin/chromium";

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => (typeof address === "object" && address ? resolve(address.port) : reject()));
    });
  });
}

let demo: ChildProcess;
let browser: Browser;
let base: string;
/** Console errors of every page opened, checked at the end. */
const consoleErrors: string[] = [];
const shots = process.env.MILLSTREAM_SCREENSHOTS ?? join(__dirname, "../../target/ui-screenshots");

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  demo = spawn(bin, ["demo", "--devices", "3", "--http", `127.0.0.1:${port}`], {
    cwd: mkdtempSync(join(tmpdir(), "millstream-ui-")),
    stdio: ["ignore", "pipe", "pipe"],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the demo printed no URL")), 60_000);
    demo.stdout!.on("data", (chunk: Buffer) => {
      if (chunk.toString().includes("open http://")) {
        clearTimeout(timer);
        resolve();
      }
    });
    demo.on("exit", (code) => reject(new Error(`the demo exited: ${code}`)));
  });
  browser = await chromium.launch({ executablePath: chromiumPath, args: ["--no-sandbox"] });
});

afterAll(async () => {
  await browser?.close();
  demo?.kill("SIGINT");
});

async function open(path: string, locale = "en-US", viewport = { width: 1280, height: 720 }): Promise<Page> {
  const context = await browser.newContext({ viewport, locale });
  const page = await context.newPage();
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(`${path}: ${m.text()}`);
  });
  page.on("pageerror", (e) => consoleErrors.push(`${path}: ${e.message}`));
  await page.goto(`${base}/${path}`);
  return page;
}

/** Saturated pixels on a canvas: ECharts series are coloured, its grid and text grey. */
function coloredPixels(page: Page, selector: string): Promise<number> {
  return page.evaluate((selector) => {
    const canvas = document.querySelector(selector) as HTMLCanvasElement | null;
    if (!canvas || canvas.width === 0) return 0;
    const data = canvas.getContext("2d")!.getImageData(0, 0, canvas.width, canvas.height).data;
    let colored = 0;
    for (let i = 0; i < data.length; i += 4) {
      const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
      if (Math.max(r, g, b) - Math.min(r, g, b) > 60) colored += 1;
    }
    return colored;
  }, selector);
}

async function shot(page: Page, name: string) {
  const { mkdirSync } = await import("node:fs");
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

const axePath = createRequire(import.meta.url).resolve("axe-core/axe.min.js");
const axeSource = readFileSync(axePath, "utf8");

describe("dashboard", () => {
  it("passes axe's WCAG 2 A/AA checks on every page at desktop and tablet widths, without sideways scrolling", async () => {
    for (const viewport of [{ width: 1280, height: 720 }, { width: 768, height: 1024 }]) {
      for (const path of ["#/overview", "#/collection", "#/display", "#/analysis"]) {
        const page = await open(path, "en-US", viewport);
        // Wait for live content (the machines' table or selects) before checking.
        await page.locator("main select, main table").first().waitFor({ timeout: 20_000 });
        await page.waitForTimeout(1_500);
        // Evaluated over DevTools, not added as a <script>: the pages' Content-Security-Policy
        // refuses inline scripts, and stays on for every test.
        await page.evaluate(axeSource);
        const violations = await page.evaluate(async () => {
          const axe = (window as unknown as { axe: { run: (c: Document, o: object) => Promise<{ violations: { id: string; help: string; nodes: { target: string[] }[] }[] }> } }).axe;
          const result = await axe.run(document, { runOnly: { type: "tag", values: ["wcag2a", "wcag2aa"] } });
          return result.violations.map((v) => `${v.id} (${v.help}): ${v.nodes.slice(0, 3).map((n) => n.target.join(" ")).join(", ")}`);
        });
        expect(violations, `${path} at ${viewport.width}px`).toEqual([]);
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
        expect(overflow, `${path} at ${viewport.width}px scrolls sideways`).toBeLessThanOrEqual(0);
        if (viewport.width === 768) await shot(page, `tablet-${path.slice(2)}`);
        await page.context().close();
      }
    }
  });

  it("is usable from the keyboard: Tab reaches the navigation, Enter follows it", async () => {
    const page = await open("#/overview");
    let focused = "";
    for (let i = 0; i < 10 && focused !== "Display"; i++) {
      await page.keyboard.press("Tab");
      focused = await page.evaluate(() => document.activeElement?.textContent?.trim() ?? "");
    }
    expect(focused).toBe("Display");
    await page.keyboard.press("Enter");
    await expect.poll(() => page.evaluate(() => location.hash)).toBe("#/display");
    // Tab goes on into the page: its first control (the machine picker) takes focus. Waits
    // for the page to be drawn: tabbing through a page still rendering once lost focus.
    await page.waitForSelector("main select");
    let tag = "";
    for (let i = 0; i < 10 && !tag; i++) {
      await page.keyboard.press("Tab");
      tag = await page.evaluate(() => {
        const active = document.activeElement;
        return active?.closest("main") ? active.tagName : "";
      });
    }
    expect(tag).toBe("SELECT");
    await page.context().close();
  });

  it("shows every machine and every store on the Overview", async () => {
    const page = await open("#/overview");
    await expect
      .poll(() => page.locator("tbody tr td:first-child").allTextContents(), { timeout: 20_000 })
      .toEqual(expect.arrayContaining(["STRESS_TEST_00000", "STRESS_TEST_00001", "STRESS_TEST_00002"]));
    const text = await page.locator("main").textContent();
    expect(text).toContain("sql");
    expect(text).toContain("lake");
    expect(text).toContain("connected");
    // The fleet card shows what /api/v1/fleet says.
    const agrees = async () => {
      const fleet = await (await fetch(`${base}/api/v1/fleet`)).json();
      const card = (await page.locator(".card").first().textContent()) ?? "";
      return [["running", "Running"], ["free", "Free"], ["holding", "Holding"], ["unknown", "Unknown"]].every(
        ([state, label]) => card.includes(`${label}: ${fleet[state]}`),
      );
    };
    await expect.poll(agrees, { timeout: 10_000 }).toBe(true);
    await shot(page, "overview");
  });

  it("draws live values pushed over SSE on the Display page", async () => {
    const page = await open("#/display");
    await page.getByText("live", { exact: true }).waitFor({ timeout: 20_000 });
    await expect.poll(() => page.locator("fieldset.items input:checked").count(), { timeout: 20_000 }).toBeGreaterThan(0);
    // ECharts draws on a canvas: wait until the chart has drawn at least one series.
    await expect
      .poll(
        () => coloredPixels(page, ".chart canvas"),
        { timeout: 20_000 },
      )
      .toBeGreaterThan(200);
    // New points keep arriving: the newest time on the chart moves within 2 s.
    const newest = () =>
      page.evaluate(() => {
        const chart = (window as unknown as { echartsNewest?: () => number }).echartsNewest;
        return chart ? chart() : 0;
      });
    const first = await newest();
    await expect.poll(newest, { timeout: 2_000, interval: 200 }).toBeGreaterThan(first);
    // A text item (the program name) as a state timeline: coloured segments on its own chart.
    const device = await page.locator("select").first().inputValue();
    const items = (await (await fetch(`${base}/api/v1/devices/${device}/items`)).json()) as { item: string; last: { text: string | null } | null }[];
    const text = items.find((i) => typeof i.last?.text === "string" && i.item === "01035409");
    expect(text, "the simulator sends the program name as text").toBeTruthy();
    await page.locator(`input[type=checkbox][value="${text!.item}"]`).check();
    await expect
      .poll(
        () => coloredPixels(page, ".states canvas"),
        { timeout: 20_000 },
      )
      .toBeGreaterThan(100);
    await shot(page, "display");
  });

  it("shows closing windows on the Analysis page and exports them as CSV", async () => {
    const context = await browser.newContext({ viewport: { width: 1280, height: 720 }, acceptDownloads: true });
    const page = await context.newPage();
    await page.goto(`${base}/#/analysis`);
    // device, item, time range, window
    await expect.poll(() => page.locator("select").nth(3).locator("option").count(), { timeout: 20_000 }).toBeGreaterThan(0);
    await page.locator("select").nth(3).selectOption("1s");
    await expect
      .poll(async () => Number((await page.getByText(/\d+ windows/).textContent())?.split(" ")[0]), { timeout: 20_000 })
      .toBeGreaterThan(1);
    const [download] = await Promise.all([page.waitForEvent("download"), page.getByRole("button", { name: "Export CSV" }).click()]);
    const path = await download.path();
    const { readFileSync } = await import("node:fs");
    const lines = readFileSync(path!, "utf8").trim().split("\r\n");
    expect(lines[0]).toBe("device,item,size,start,end,count,min,max,mean,stddev,p50,p95,p99,first,last");
    expect(lines.length).toBeGreaterThan(2);
    expect(lines[1]).toMatch(/^STRESS_TEST_0000\d,\w+,1s,\d{4}-/);
    await page.screenshot({ path: join(shots, "analysis.png") });
  });

  it("switches the Analysis page to windows computed from the lake", async () => {
    const page = await open("#/analysis");
    await expect.poll(() => page.locator("select").nth(1).locator("option").count(), { timeout: 20_000 }).toBeGreaterThan(0);
    const device = await page.locator("select").nth(0).inputValue();
    const item = await page.locator("select").nth(1).inputValue();
    // The demo's lake completes a file every 10 s: wait until the API has history.
    const history = async () => {
      const to = Date.now();
      const r = await fetch(`${base}/api/v1/history?device=${device}&item=${item}&every=10s&from=${to - 3_600_000}&to=${to}`);
      expect(r.status).toBe(200);
      return ((await r.json()) as { windows: unknown[] }).windows.length;
    };
    await expect.poll(history, { timeout: 40_000, interval: 1_000 }).toBeGreaterThan(0);
    await page.locator("select").nth(2).selectOption("1h");
    await page.locator("select").nth(3).selectOption("10s");
    await expect
      .poll(async () => Number((await page.getByText(/\d+ windows/).textContent())?.split(" ")[0]), { timeout: 20_000 })
      .toBeGreaterThan(0);
    await shot(page, "analysis-history");
    // Too fine for a week: the page picks a window length the API accepts.
    await page.locator("select").nth(3).selectOption("1s");
    await page.locator("select").nth(2).selectOption("7d");
    await expect.poll(() => page.locator("select").nth(3).inputValue(), { timeout: 10_000 }).toBe("10m");
  });

  it("asks a machine now and shows its answer; a bad broker URL is refused with a reason", async () => {
    const page = await open("#/collection");
    await page.locator("details summary").first().waitFor({ timeout: 20_000 });
    // The X axis' name: no Sample channel carries it, so only the Query's answer can.
    const box = page.locator('input[type=checkbox][value="01035001"]');
    if (!(await box.isVisible())) {
      await page.locator("details", { has: box }).locator("summary").click();
    }
    await box.check();
    await page.getByRole("button", { name: "Ask now" }).click();
    await expect.poll(() => page.locator("table tbody tr").count(), { timeout: 15_000 }).toBe(1);
    const cells = await page.locator("table tbody tr td").allTextContents();
    expect(cells[0]).toContain("01035001");
    expect(cells[1]).toBe("X");
    // Poll the same item every 500 ms, then stop.
    await page.getByLabel("Poll every").fill("500ms");
    await page.getByRole("button", { name: "Poll the chosen items" }).click();
    await expect.poll(() => page.locator(".poll-state").textContent(), { timeout: 10_000 }).toContain("Polling every 500ms");
    const polled = (await (await fetch(`${base}/api/v1/poll`)).json()) as { poll: { items: string[] } | null };
    expect(polled.poll?.items).toEqual(["01035001"]);
    await page.getByRole("button", { name: "Stop polling" }).click();
    await expect.poll(() => page.locator(".poll-state").textContent(), { timeout: 10_000 }).toContain("Not polling");
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, "collection");
    await page.getByLabel("Broker URL").fill("ftp://nowhere");
    await page.getByRole("button", { name: "Connect" }).click();
    await expect.poll(() => page.getByRole("status").textContent(), { timeout: 10_000 }).toContain("400");
    // The browser logs the provoked 400 itself; that one is expected. Its console message may
    // come after the page shows the answer: wait for it before taking it out.
    const isProvoked = (e: string) => e.startsWith("#/collection") && e.includes("status of 400");
    await expect.poll(() => consoleErrors.some(isProvoked), { timeout: 5_000 }).toBe(true);
    consoleErrors.splice(consoleErrors.findIndex(isProvoked), 1);
  });

  it("reconnects to another broker from the form and shows the new state", async () => {
    // The machine's Mosquitto (scripts/test starts it); the demo began on its embedded broker.
    const other = process.env.MILLSTREAM_TEST_MQTT ?? "mqtt://127.0.0.1:1883";
    const page = await open("#/collection");
    await page.getByLabel("Broker URL").fill(other);
    await page.getByRole("button", { name: "Connect" }).click();
    await expect.poll(() => page.getByRole("status").textContent(), { timeout: 15_000 }).toContain(other);
    // The broker card shows the new broker, connected, and stays so.
    const card = () => page.locator(".card p").first().textContent();
    await expect.poll(card, { timeout: 15_000 }).toMatch(new RegExp(`^\\s*connected\\s*· ${other.replace(/[/.]/g, "\\$&")}`));
    await page.waitForTimeout(6_000);
    expect(await card()).toMatch(/^\s*connected/);
  });

  it("speaks Chinese to a Chinese browser and switches on request", async () => {
    const page = await open("#/overview", "zh-CN");
    await expect.poll(() => page.locator("nav a").allTextContents()).toEqual(["总览", "数据采集", "数据显示", "数据分析"]);
    await page.getByRole("button", { name: "English" }).click();
    await expect.poll(() => page.locator("nav a").first().textContent()).toBe("Overview");
  });

  it("says so when the API does not answer", async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    // The page from the demo, its API cut off.
    await page.route("**/api/v1/**", (route) => route.abort());
    await page.goto(`${base}/#/overview`);
    await expect.poll(() => page.getByRole("alert").textContent(), { timeout: 10_000 }).toContain("does not answer");
  });

  it("logged no console errors on any page", () => {
    expect(consoleErrors.join("\n")).toBe("");
  });
});
