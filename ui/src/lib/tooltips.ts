// ECharts tooltip formatters. ECharts puts a formatter's string into the page as HTML, and the
// texts in these tooltips (item names, program names, states) come from the machines: here they
// are escaped, and the formatters live outside the pages so tests can feed them hostile text.
import { escapeHtml } from "./html";

/** What ECharts hands the timeline's formatter: a segment as `[start, end, row, text]`. */
export interface TimelineParams {
  value: [number, number, number, string];
}

/** The timeline tooltip: the row's label, then the state and its time span. */
export function timelineTooltip(rows: readonly string[], time: (ts: number) => string) {
  return (p: TimelineParams): string => {
    const [start, end, row, text] = p.value;
    return `${escapeHtml(rows[row] ?? "")}<br>${escapeHtml(text)}: ${escapeHtml(time(start))} – ${escapeHtml(time(end))}`;
  };
}
