// The JSON API (docs/DESIGN.md §8), typed as the dashboard uses it.

export interface Device {
  device: string;
  items: number;
  last_seen: number | null;
  status: "running" | "free" | "holding" | "unknown";
  samples: number;
}

export interface Item {
  item: string;
  name: string | null;
  type: string | null;
  path?: string;
  last: { ts: number; value: number | null; text: string | null } | null;
}

export interface Fleet {
  running: number;
  free: number;
  holding: number;
  unknown: number;
}

export interface SinkStatus {
  name: string;
  kind: string;
  healthy: boolean;
  queued: number;
  spooled_bytes: number;
  written: number;
  failed: number;
  retries: number;
  dropped: number;
  last_error: string | null;
}

export interface Status {
  source: {
    connected: boolean;
    broker: string;
    messages: number;
    samples: number;
    late_samples: number;
    dead_letters: Record<string, number>;
  };
  sinks: SinkStatus[];
  now: number;
}

export async function get<T>(path: string): Promise<T> {
  return answer<T>(await fetch(path, { headers: { accept: "application/json" } }));
}

/** POSTs JSON; `token` is sent as a bearer token when given (`http.token`). */
export async function post<T>(path: string, body: unknown, token = ""): Promise<T> {
  const headers: Record<string, string> = { "content-type": "application/json", accept: "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  return answer<T>(await fetch(path, { method: "POST", headers, body: JSON.stringify(body) }));
}

async function answer<T>(response: Response): Promise<T> {
  if (!response.ok) {
    let reason = `${response.status}`;
    try {
      reason += `: ${(await response.json()).error}`;
    } catch {
      // not JSON: the status says enough
    }
    throw new Error(reason);
  }
  return (await response.json()) as T;
}
