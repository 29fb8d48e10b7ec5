import { describe, expect, it } from "vitest";
import { parseEvent } from "./events";

describe("parseEvent", () => {
  it("reads a sample event as the API sends it", () => {
    const e = parseEvent(
      "sample",
      '{"device":"STRESS_TEST_00000","samples":[{"item":"0103502201","ts":1764086400000,"value":12.5,"text":null},{"item":"010302","ts":1764086400001,"value":null,"text":"RUNNING"}]}',
    );
    expect(e).toEqual({
      kind: "sample",
      device: "STRESS_TEST_00000",
      samples: [
        { item: "0103502201", ts: 1764086400000, value: 12.5, text: null },
        { item: "010302", ts: 1764086400001, value: null, text: "RUNNING" },
      ],
    });
  });

  it("reads a window event, null statistics included", () => {
    const e = parseEvent(
      "window",
      '{"device":"D","windows":[{"item":"x","size_ms":1000,"start":0,"end":1000,"count":1,"min":2,"max":2,"mean":2,"stddev":null,"p50":2,"p95":2,"p99":2,"first":2,"last":2}]}',
    );
    expect(e).not.toBeInstanceOf(Error);
    if (!(e instanceof Error) && e.kind === "window") {
      expect(e.windows[0].stddev).toBeNull();
      expect(e.windows[0].count).toBe(1);
    }
  });

  it("explains malformed events instead of throwing", () => {
    expect(parseEvent("sample", "{not json")).toBeInstanceOf(Error);
    expect(parseEvent("sample", '{"device":"D"}')).toBeInstanceOf(Error);
    expect(parseEvent("sample", '{"device":"D","samples":[{"item":"x","ts":"soon"}]}')).toBeInstanceOf(Error);
    expect(parseEvent("window", '{"device":"D","windows":[{"item":"x"}]}')).toBeInstanceOf(Error);
    expect(parseEvent("mystery", "{}")).toBeInstanceOf(Error);
  });

  it("reads lagged notices", () => {
    expect(parseEvent("lagged", '{"missed":42}')).toEqual({ kind: "lagged", missed: 42 });
  });
});
