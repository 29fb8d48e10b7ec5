// Live events from /api/v1/events (Server-Sent Events), checked before use: a malformed event is
// reported and skipped, never thrown into the page.

export interface SampleValue {
  item: string;
  ts: number;
  value: number | null;
  text: string | null;
}

export interface SampleEvent {
  kind: "sample";
  device: string;
  samples: SampleValue[];
}

export interface WindowValue {
  item: string;
  size_ms: number;
  start: number;
  end: number;
  count: number;
  min: number | null;
  max: number | null;
  mean: number | null;
  stddev: number | null;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  first: number | null;
  last: number | null;
}

export interface WindowEvent {
  kind: "window";
  device: string;
  windows: WindowValue[];
}

export interface LaggedEvent {
  kind: "lagged";
  missed: number;
}

export type LiveEvent = SampleEvent | WindowEvent | LaggedEvent;

const isNumberOrNull = (v: unknown): v is number | null => v === null || typeof v === "number";
const isStringOrNull = (v: unknown): v is string | null => v === null || typeof v === "string";

function sampleValue(v: unknown): SampleValue | null {
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  if (typeof o.item !== "string" || typeof o.ts !== "number") return null;
  const value = o.value ?? null;
  const text = o.text ?? null;
  if (!isNumberOrNull(value) || !isStringOrNull(text)) return null;
  return { item: o.item, ts: o.ts, value, text };
}

const WINDOW_NUMBERS = ["min", "max", "mean", "stddev", "p50", "p95", "p99", "first", "last"] as const;

function windowValue(v: unknown): WindowValue | null {
  if (typeof v !== "object" || v === null) return null;
  const o = v as Record<string, unknown>;
  if (
    typeof o.item !== "string" ||
    typeof o.size_ms !== "number" ||
    typeof o.start !== "number" ||
    typeof o.end !== "number" ||
    typeof o.count !== "number"
  ) {
    return null;
  }
  const out = { item: o.item, size_ms: o.size_ms, start: o.start, end: o.end, count: o.count } as WindowValue;
  for (const key of WINDOW_NUMBERS) {
    const x = o[key] ?? null;
    if (!isNumberOrNull(x)) return null;
    out[key] = x;
  }
  return out;
}

/** Parses one SSE event (its `event:` name and `data:` text); `Error` explains a bad one. */
export function parseEvent(name: string, data: string): LiveEvent | Error {
  let json: unknown;
  try {
    json = JSON.parse(data);
  } catch {
    return new Error(`${name}: data is not JSON`);
  }
  if (typeof json !== "object" || json === null) return new Error(`${name}: data is not an object`);
  const o = json as Record<string, unknown>;
  switch (name) {
    case "sample": {
      if (typeof o.device !== "string" || !Array.isArray(o.samples)) {
        return new Error("sample: needs device and samples");
      }
      const samples = o.samples.map(sampleValue);
      if (samples.some((s) => s === null)) return new Error("sample: a malformed sample");
      return { kind: "sample", device: o.device, samples: samples as SampleValue[] };
    }
    case "window": {
      if (typeof o.device !== "string" || !Array.isArray(o.windows)) {
        return new Error("window: needs device and windows");
      }
      const windows = o.windows.map(windowValue);
      if (windows.some((w) => w === null)) return new Error("window: a malformed window");
      return { kind: "window", device: o.device, windows: windows as WindowValue[] };
    }
    case "lagged":
      if (typeof o.missed !== "number") return new Error("lagged: needs missed");
      return { kind: "lagged", missed: o.missed };
    default:
      return new Error(`unknown event ${name}`);
  }
}
