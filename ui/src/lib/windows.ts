// Window aggregates of one (device, item, size), oldest first, bounded; merged from the API's
// history and live `window` events (a window arriving twice replaces itself).
import type { WindowValue } from "./events";

export const MAX_WINDOWS = 2_000;

export class WindowTable {
  private byStart = new Map<number, WindowValue>();

  constructor(
    readonly item: string,
    readonly sizeMs: number,
  ) {}

  add(windows: WindowValue[]): void {
    for (const w of windows) {
      if (w.item !== this.item || w.size_ms !== this.sizeMs) continue;
      this.byStart.set(w.start, w);
    }
    if (this.byStart.size > MAX_WINDOWS) {
      const starts = [...this.byStart.keys()].sort((a, b) => a - b);
      for (const start of starts.slice(0, starts.length - MAX_WINDOWS)) this.byStart.delete(start);
    }
  }

  rows(): WindowValue[] {
    return [...this.byStart.values()].sort((a, b) => a.start - b.start);
  }
}

export const WINDOW_COLUMNS = [
  "start", "end", "count", "min", "max", "mean", "stddev", "p50", "p95", "p99", "first", "last",
] as const;
