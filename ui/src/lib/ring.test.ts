import { describe, expect, it } from "vitest";
import { Ring } from "./ring";

describe("Ring", () => {
  it("keeps the newest items, oldest first", () => {
    const ring = new Ring<number>(3);
    [1, 2, 3, 4, 5].forEach((n) => ring.push(n));
    expect(ring.length).toBe(3);
    expect(ring.toArray()).toEqual([3, 4, 5]);
  });

  it("drops old items from the front", () => {
    const ring = new Ring<{ ts: number }>(10);
    for (let ts = 0; ts < 8; ts += 1) ring.push({ ts });
    ring.dropWhile((x) => x.ts < 5);
    expect(ring.toArray().map((x) => x.ts)).toEqual([5, 6, 7]);
    ring.push({ ts: 8 });
    expect(ring.length).toBe(4);
  });

  it("refuses a useless capacity", () => {
    expect(() => new Ring(0)).toThrow(RangeError);
  });

  it("stays bounded under a flood", () => {
    const ring = new Ring<number>(1000);
    for (let i = 0; i < 100_000; i += 1) ring.push(i);
    const items = ring.toArray();
    expect(items.length).toBe(1000);
    expect(items[0]).toBe(99_000);
  });
});
