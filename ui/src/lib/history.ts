// The Analysis page's time range: live (recent windows, then SSE) or a span of history from
// the lake (`GET /api/v1/history`), with the window lengths each offers.

export type Range = "live" | "1h" | "6h" | "24h" | "7d" | "custom";

export const RANGES: Range[] = ["live", "1h", "6h", "24h", "7d", "custom"];

/** Window lengths offered for history (the API allows at most 10,000 per request). */
export const HISTORY_EVERY = ["1s", "10s", "1m", "10m", "1h"];

const SPAN_MS: Record<Exclude<Range, "live" | "custom">, number> = {
  "1h": 3_600_000,
  "6h": 6 * 3_600_000,
  "24h": 24 * 3_600_000,
  "7d": 7 * 24 * 3_600_000,
};

export function durationMs(text: string): number {
  const m = /^(\d+)(ms|s|m|h|d)$/.exec(text);
  if (!m) return 0;
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[m[2] as "ms" | "s" | "m" | "h" | "d"];
}

/**
 * The [from, to) of a history range in ms; custom ranges come from `datetime-local` inputs
 * (local time). An error text when the range is unusable.
 */
export function historySpan(range: Range, now: number, fromText = "", toText = ""): { from: number; to: number } | string {
  if (range === "live") return "live";
  if (range !== "custom") return { from: now - SPAN_MS[range], to: now };
  const from = Date.parse(fromText);
  const to = toText ? Date.parse(toText) : now;
  if (Number.isNaN(from) || Number.isNaN(to)) return "range.invalid";
  if (from >= to) return "range.order";
  return { from, to };
}

/** The longest-first window length that keeps a span within `max` windows. */
export function fittingEvery(spanMs: number, wanted: string, max = 10_000): string {
  if (spanMs / durationMs(wanted) <= max) return wanted;
  return HISTORY_EVERY.find((e) => spanMs / durationMs(e) <= max) ?? HISTORY_EVERY[HISTORY_EVERY.length - 1];
}

export function historyUrl(device: string, item: string, every: string, span: { from: number; to: number }): string {
  const q = new URLSearchParams({ device, item, every, from: String(Math.floor(span.from)), to: String(Math.ceil(span.to)) });
  return `/api/v1/history?${q}`;
}
