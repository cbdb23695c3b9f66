// Plain-text tables for a terminal: columns padded to their widest cell, null shown as "-".

export type Cell = string | number | boolean | null | undefined;

export function cell(value: unknown): string {
  if (value === null || value === undefined) return '-';
  if (typeof value === 'object') return JSON.stringify(value);
  return String(value);
}

/** Rows under a header line. */
export function table(headers: string[], rows: Cell[][]): string {
  const text = [headers, ...rows.map((row) => row.map(cell))];
  const widths = headers.map((_, i) => Math.max(...text.map((row) => (row[i] ?? '').length)));
  return text.map((row) => row.map((value, i) => (i === row.length - 1 ? value : (value ?? '').padEnd(widths[i] ?? 0))).join('  ')).join('\n');
}

/** One record, a field per line. */
export function fields(record: Record<string, unknown>, order?: string[]): string {
  const keys = order ? [...order.filter((k) => k in record), ...Object.keys(record).filter((k) => !order.includes(k))] : Object.keys(record);
  return table(['field', 'value'], keys.map((key) => [key, cell(record[key])]));
}
