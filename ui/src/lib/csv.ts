// CSV export of what a page shows (RFC 4180: fields with commas, quotes, tabs or line breaks
// are quoted, quotes doubled). Numbers keep full precision; null and undefined are empty fields.
//
// Text cells hold device strings (device and item ids, states, program names), which the
// machines send and an attacker can choose: a spreadsheet would run `=HYPERLINK(…)` or
// `+cmd|…` as a formula. So a text cell that starts like a formula gets a leading `'` (OWASP's
// advice for CSV injection). Only strings: numbers are written from JS numbers, so a real -3.5
// stays a number, while the string "-2+3" is neutralised like any other text.

export type Cell = string | number | boolean | null | undefined;

/** What a spreadsheet takes as the start of a formula: = + - @, TAB and CR. */
const FORMULA_START = /^[=+\-@\t\r]/;

function field(cell: Cell): string {
  if (cell === null || cell === undefined) return "";
  let text: string;
  if (typeof cell === "number") text = Number.isFinite(cell) ? String(cell) : "";
  else if (typeof cell === "string") text = FORMULA_START.test(cell) ? `'${cell}` : cell;
  else text = String(cell);
  return /[",\t\r\n]/.test(text) || text.trim() !== text ? `"${text.replaceAll('"', '""')}"` : text;
}

/** Rows as CSV text with a header line, CRLF line ends. */
export function toCsv(columns: string[], rows: Cell[][]): string {
  const lines = [columns.map(field).join(",")];
  for (const row of rows) {
    if (row.length !== columns.length) {
      throw new RangeError(`a row has ${row.length} fields, the header ${columns.length}`);
    }
    lines.push(row.map(field).join(","));
  }
  return lines.join("\r\n") + "\r\n";
}

/**
 * A download file name built from device strings: only letters, digits, `.`, `_` and `-`
 * survive, so a hostile id can name no folder and cannot hide the extension behind a
 * right-to-left override or a run of spaces.
 */
export function csvFileName(parts: string[]): string {
  const stem = parts
    .map((p) => p.normalize("NFC").replace(/[^\p{L}\p{N}._-]+/gu, "_"))
    .join("-")
    .replace(/^[.-]+/, "")
    .slice(0, 120);
  return `${stem || "export"}.csv`;
}
