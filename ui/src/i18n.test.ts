import { describe, expect, it } from "vitest";
import { locale, t } from "./i18n";

describe("t", () => {
  it("fills placeholders with device strings as they are, `$` patterns included", () => {
    locale.value = "en";
    expect(t("collection.switched", { broker: "$& $` $' $1 <b>" })).toBe("Now taking data from $& $` $' $1 <b>");
    expect(t("analysis.windows", { n: 3 })).toBe("3 windows");
  });
});
