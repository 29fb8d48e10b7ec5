import { describe, expect, it } from "vitest";
import { MAX_WINDOWS, WindowTable } from "./windows";
import type { WindowValue } from "./events";

const w = (item: string, size_ms: number, start: number, count = 1): WindowValue => ({
  item, size_ms, start, end: start + size_ms, count,
  min: 1, max: 2, mean: 1.5, stddev: null, p50: 1.5, p95: 2, p99: 2, first: 1, last: 2,
});

describe("WindowTable", () => {
  it("keeps one item and size, in order, a repeated window replacing itself", () => {
    const table = new WindowTable("x", 1000);
    table.add([w("x", 1000, 2000), w("y", 1000, 0), w("x", 10_000, 0), w("x", 1000, 1000)]);
    table.add([w("x", 1000, 2000, 7)]);
    expect(table.rows().map((r) => [r.start, r.count])).toEqual([[1000, 1], [2000, 7]]);
  });

  it("is bounded, keeping the newest", () => {
    const table = new WindowTable("x", 1000);
    table.add(Array.from({ length: MAX_WINDOWS + 10 }, (_, k) => w("x", 1000, k * 1000)));
    const rows = table.rows();
    expect(rows.length).toBe(MAX_WINDOWS);
    expect(rows[0].start).toBe(10_000);
  });
});
