// CSV export of what a page shows (RFC 4180: fields with commas, quotes or line breaks are
// quoted, quotes doubled). Numbers keep full precision; null and undefined are empty fields.

export type Cell = string | number | boolean | null | undefined;

function field(cell: Cell): string {
  if (cell === null || cell === undefined) return "";
  const text = typeof cell === "number" ? (Number.isFinite(cell) ? String(cell) : "") : String(cell);
  return /[",\r\n]/.test(text) || text.trim() !== text ? `"${text.replaceAll('"', '""')}"` : text;
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
