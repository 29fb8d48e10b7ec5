// Units for chart labels. NC-Link models carry no units; they follow from the item type (and,
// for rotary axes, the component): the simulator and the classroom's machines use mm, mm/min,
// A and % for these types, degrees for a rotary (C/A/B) axis.

const BY_TYPE: Record<string, string> = {
  POSITION: "mm",
  SPEED: "mm/min",
  FEED_SPEED: "mm/min",
  CURRENT: "A",
  FEED_OVERRIDE: "%",
  SPDL_OVERRIDE: "%",
  LOAD: "%",
};

/** The unit of an item of `type` under component `path` (e.g. `C轴/电机`), or "" if unknown. */
export function unitOf(type: string | null | undefined, path = ""): string {
  if (!type) return "";
  const rotary = /(^|\/)[ABC](轴|-axis| axis)/i.test(path);
  if (rotary && type === "POSITION") return "°";
  if (rotary && type === "SPEED") return "°/min";
  return BY_TYPE[type] ?? "";
}
