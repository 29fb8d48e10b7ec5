import { describe, expect, it } from "vitest";
import { durationMs, fittingEvery, historySpan, historyUrl } from "./history";

describe("history ranges", () => {
  const now = 1_764_086_400_000;

  it("turns preset ranges into spans ending now", () => {
    expect(historySpan("1h", now)).toEqual({ from: now - 3_600_000, to: now });
    expect(historySpan("7d", now)).toEqual({ from: now - 7 * 86_400_000, to: now });
    expect(historySpan("live", now)).toBe("live");
  });

  it("checks custom ranges", () => {
    expect(historySpan("custom", now, "2025-11-25T10:00", "2025-11-25T09:00")).toBe("range.order");
    expect(historySpan("custom", now, "", "")).toBe("range.invalid");
    const span = historySpan("custom", now, "2025-11-25T10:00", "2025-11-25T11:00");
    expect(typeof span === "object" && span.to - span.from).toBe(3_600_000);
  });

  it("picks a window length the API accepts", () => {
    expect(durationMs("10s")).toBe(10_000);
    expect(durationMs("2d")).toBe(172_800_000);
    expect(fittingEvery(3_600_000, "1s")).toBe("1s"); // 3,600 windows
    expect(fittingEvery(7 * 86_400_000, "1s")).toBe("10m"); // 10,080 of 1m would be too many
  });

  it("builds the request", () => {
    expect(historyUrl("D 1", "0103", "1m", { from: 1.5, to: 9.2 })).toBe(
      "/api/v1/history?device=D+1&item=0103&every=1m&from=1&to=10",
    );
  });
});
