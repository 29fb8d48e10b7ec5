import { describe, expect, it } from "vitest";
import { toCsv } from "./csv";

describe("toCsv", () => {
  it("quotes what needs quoting and leaves the rest", () => {
    const text = toCsv(
      ["device", "start", "mean", "note"],
      [
        ["机床 A", 1764086400000, 0.1 + 0.2, 'say "hi", then\nleave'],
        ["B", 0, null, undefined],
      ],
    );
    expect(text).toBe(
      'device,start,mean,note\r\n机床 A,1764086400000,0.30000000000000004,"say ""hi"", then\nleave"\r\nB,0,,\r\n',
    );
  });

  it("writes non-finite numbers as empty fields and keeps edge spaces quoted", () => {
    expect(toCsv(["a", "b"], [[Number.NaN, " x"]])).toBe('a,b\r\n,\" x\"\r\n');
  });

  it("refuses rows that do not match the header", () => {
    expect(() => toCsv(["a", "b"], [[1]])).toThrow(RangeError);
  });
});
