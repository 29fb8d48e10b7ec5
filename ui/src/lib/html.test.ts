import { describe, expect, it } from "vitest";
import { format } from "echarts/core";
import { escapeHtml } from "./html";

const ATTACK = "<img src=x onerror=alert(1)>";

describe("escapeHtml", () => {
  it("leaves no markup in a hostile device string", () => {
    const html = escapeHtml(ATTACK);
    expect(html).toBe("&lt;img src=x onerror=alert(1)&gt;");
    expect(html).not.toContain("<");
  });

  it("escapes quotes and ampersands, so attributes and entities cannot be broken out of", () => {
    expect(escapeHtml(`" onmouseover='x' &amp;`)).toBe("&quot; onmouseover=&#39;x&#39; &amp;amp;");
  });

  it("keeps other text as it is and writes null and undefined as nothing", () => {
    expect(escapeHtml("机床 A — X轴 [mm]")).toBe("机床 A — X轴 [mm]");
    expect(escapeHtml(-3.5)).toBe("-3.5");
    expect(escapeHtml(null)).toBe("");
    expect(escapeHtml(undefined)).toBe("");
  });

  it("agrees with ECharts' own encodeHTML, which its default tooltips use", () => {
    const text = `${ATTACK} "a" 'b' & c`;
    expect(escapeHtml(text)).toBe(format.encodeHTML(text));
  });
});
