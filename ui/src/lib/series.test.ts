import { describe, expect, it } from "vitest";
import { LiveSeries, MAX_POINTS, stateColor, timelineSegments } from "./series";

describe("LiveSeries", () => {
  it("keeps numbers as points and text as changes, for wanted items only", () => {
    const live = new LiveSeries();
    const wanted = new Set(["x", "state"]);
    live.add(
      [
        { item: "x", ts: 1, value: 1.5, text: null },
        { item: "y", ts: 1, value: 9, text: null },
        { item: "state", ts: 1, value: null, text: "RUNNING" },
        { item: "state", ts: 2, value: null, text: "RUNNING" },
        { item: "state", ts: 3, value: null, text: "HOLDING" },
      ],
      wanted,
    );
    expect(live.points.get("x")?.toArray()).toEqual([[1, 1.5]]);
    expect(live.points.has("y")).toBe(false);
    expect(live.changes.get("state")?.toArray()).toEqual([
      { ts: 1, text: "RUNNING" },
      { ts: 3, text: "HOLDING" },
    ]);
  });

  it("is bounded and trimmed to the span", () => {
    const live = new LiveSeries();
    const wanted = new Set(["x"]);
    for (let ts = 0; ts < MAX_POINTS + 500; ts += 1) {
      live.add([{ item: "x", ts, value: ts, text: null }], wanted);
    }
    expect(live.points.get("x")?.length).toBe(MAX_POINTS);
    live.trim(MAX_POINTS);
    expect(live.points.get("x")?.toArray()[0]).toEqual([MAX_POINTS, MAX_POINTS]);
  });
});

describe("text item timeline", () => {
  it("turns changes into segments clipped to the span", () => {
    const changes = [
      { ts: 0, text: "free" },
      { ts: 100, text: "running" },
      { ts: 250, text: "holding" },
    ];
    expect(timelineSegments(changes, 150, 400)).toEqual([
      { start: 150, end: 250, text: "running" },
      { start: 250, end: 400, text: "holding" },
    ]);
    expect(timelineSegments([], 0, 10)).toEqual([]);
  });

  it("gives each state a stable colour", () => {
    expect(stateColor("running")).toBe(stateColor("RUNNING"));
    expect(stateColor("T0102")).toBe(stateColor("T0102"));
    expect(stateColor("free")).not.toBe(stateColor("running"));
  });
});
