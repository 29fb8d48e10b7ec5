// Device ids, item ids and names, program names and alarm texts come from the machines over
// MQTT and are attacker-controlled. Vue's `{{ }}` escapes them, but ECharts renders a tooltip
// formatter's string as HTML: every device string that goes into such a string passes here
// first. The one place for it, so a new formatter has no second, subtly different escape.

const ENTITIES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** `value` as HTML text, safe in element content and in quoted attribute values. */
export function escapeHtml(value: unknown): string {
  // Quotes too: a formatter may one day put the text in an attribute (a title, a style).
  return value === null || value === undefined ? "" : String(value).replace(/[&<>"']/g, (c) => ENTITIES[c]);
}
