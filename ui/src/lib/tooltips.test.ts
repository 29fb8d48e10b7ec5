import { describe, expect, it } from "vitest";
import { timelineTooltip } from "./tooltips";

const ATTACK = "<img src=x onerror=alert(1)>";
const time = (ts: number) => `t${ts}`;

describe("timelineTooltip", () => {
  it("escapes a hostile item label and state text", () => {
    const html = timelineTooltip([`${ATTACK} (prog, PROGRAM)`], time)({ value: [1, 2, 0, ATTACK] });
    expect(html).toContain("&lt;img");
    expect(html).not.toContain("<img");
    // The only markup left is the tooltip's own line break.
    expect(html.replaceAll("<br>", "")).not.toMatch(/[<>]/);
  });

  it("shows the label, the state and its span", () => {
    expect(timelineTooltip(["Program (p1)"], time)({ value: [10, 20, 0, "O1234 & co"] })).toBe(
      "Program (p1)<br>O1234 &amp; co: t10 – t20",
    );
  });

  it("writes an unknown row as an empty label", () => {
    expect(timelineTooltip([], time)({ value: [1, 2, 3, "RUNNING"] })).toBe("<br>RUNNING: t1 – t2");
  });
});
