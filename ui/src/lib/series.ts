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

/** A state held from `start` to `end` (ms), for the text items' timeline. */
export interface Segment {
  start: number;
  end: number;
  text: string;
}

/**
 * The states of a text item shown between `since` and `now`: each change lasts until the next
 * (the last until `now`); the state in force at `since` starts there.
 */
export function timelineSegments(changes: { ts: number; text: string }[], since: number, now: number): Segment[] {
  const out: Segment[] = [];
  for (let i = 0; i < changes.length; i++) {
    const end = i + 1 < changes.length ? changes[i + 1].ts : now;
    if (end <= since) continue;
    out.push({ start: Math.max(changes[i].ts, since), end, text: changes[i].text });
  }
  return out;
}

/** A stable colour per state text, from a palette readable on white. */
const PALETTE = ["#2f6f3e", "#1f5fa8", "#b25b00", "#8a2d8f", "#b42318", "#4b5563", "#0f766e", "#9a6700"];
export function stateColor(text: string): string {
  const known: Record<string, string> = { running: "#2f6f3e", free: "#1f5fa8", holding: "#b25b00", unknown: "#4b5563" };
  const word = text.toLowerCase();
  if (known[word]) return known[word];
  let h = 0;
  for (const ch of text) h = (h * 31 + ch.codePointAt(0)!) >>> 0;
  return PALETTE[h % PALETTE.length];
}
