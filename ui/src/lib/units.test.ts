import { describe, expect, it } from "vitest";
import { unitOf } from "./units";

describe("units", () => {
  it("follow the item type, in degrees on a rotary axis", () => {
    expect(unitOf("POSITION", "X轴")).toBe("mm");
    expect(unitOf("POSITION", "C轴/电机")).toBe("°");
    expect(unitOf("SPEED", "C轴")).toBe("°/min");
    expect(unitOf("SPEED", "Y轴")).toBe("mm/min");
    expect(unitOf("CURRENT", "Z轴/驱动器")).toBe("A");
    expect(unitOf("FEED_OVERRIDE")).toBe("%");
    expect(unitOf("STATUS")).toBe("");
    expect(unitOf(null)).toBe("");
  });
});
