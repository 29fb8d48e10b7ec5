// Live series per item: bounded buffers of (time, value) for numbers and of state changes for
// text items, trimmed to the time span shown.
import { Ring } from "./ring";
import type { SampleValue } from "./events";

/** Points kept per numeric item: an hour at 10 Hz. */
export const MAX_POINTS = 36_000;
/** State changes kept per text item. */
export const MAX_CHANGES = 1_000;

export class LiveSeries {
  readonly points = new Map<string, Ring<[number, number]>>();
  readonly changes = new Map<string, Ring<{ ts: number; text: string }>>();

  /** Adds what a sample event brought for the wanted items. */
  add(samples: SampleValue[], wanted: Set<string>): void {
    for (const s of samples) {
      if (!wanted.has(s.item)) continue;
      if (s.value !== null) {
        let ring = this.points.get(s.item);
        if (!ring) this.points.set(s.item, (ring = new Ring(MAX_POINTS)));
        ring.push([s.ts, s.value]);
      } else if (s.text !== null) {
        let ring = this.changes.get(s.item);
        if (!ring) this.changes.set(s.item, (ring = new Ring(MAX_CHANGES)));
        const last = ring.toArray().at(-1);
        if (!last || last.text !== s.text) ring.push({ ts: s.ts, text: s.text });
      }
    }
  }

  /** Forgets points older than `since` (ms since the epoch). */
  trim(since: number): void {
    for (const ring of this.points.values()) ring.dropWhile(([ts]) => ts < since);
  }

  clear(): void {
    this.points.clear();
    this.changes.clear();
  }
}
