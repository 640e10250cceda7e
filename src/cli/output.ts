import type { StoredMessage } from '../core/types.ts'

/**
 * Output of the client verbs. Results go to stdout: readable lines and
 * tables, or with `--json` one JSON document (pretty-printed) or, for
 * streams, one compact JSON value per line. Warnings and progress go to stderr.
 */

let stdoutGone: (() => void) | null = null

/**
 * What to do when stdout's reader goes away (EPIPE, as in `sluice consume | head`):
 * by default the process exits quietly with 0; `consume` stops cleanly instead.
 * Call once at startup.
 */
export function watchStdout(): void {
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE') throw err
    if (stdoutGone === null) process.exit(0)
    stdoutGone()
  })
}

/** Replaces the default "exit at once" on a closed stdout; null restores it. */
export function onStdoutGone(handler: (() => void) | null): void {
  stdoutGone = handler
}

/** Writes one line to stdout; false when stdout's reader has gone, so the line was not shown. */
export function printLine(text: string): boolean {
  process.stdout.write(`${text}\n`)
  return process.stdout.writable
}

/** Writes one JSON document (a whole result), indented for reading. */
export function printJson(value: unknown): boolean {
  return printLine(JSON.stringify(value, null, 2))
}

/** Writes one JSON value on one line (an item of a stream: a receipt, a message). */
export function printJsonLine(value: unknown): boolean {
  return printLine(JSON.stringify(value))
}

/** Writes a warning to stderr, in the same shape as fatal errors. */
export function warn(text: string): void {
  process.stderr.write(`sluice: warning: ${text}\n`)
}

export type Cell = string | number

/**
 * Lays rows out under headers, columns two spaces apart; numbers are
 * right-aligned, text left-aligned. Returns the lines.
 */
export function table(headers: readonly string[], rows: readonly (readonly Cell[])[]): string[] {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((row) => String(row[i] ?? '').length)))
  const numeric = headers.map((_, i) => rows.length > 0 && rows.every((row) => typeof row[i] === 'number'))
  const layout = (cells: readonly Cell[]): string =>
    widths
      .map((width, i) => {
        const text = String(cells[i] ?? '')
        return numeric[i] === true ? text.padStart(width) : text.padEnd(width)
      })
      .join('  ')
      .trimEnd()
  return [layout(headers), ...rows.map(layout)]
}

/** Lines of `label  value` pairs, labels padded to one width. */
export function fields(pairs: readonly (readonly [string, Cell])[]): string[] {
  const width = Math.max(...pairs.map(([label]) => label.length))
  return pairs.map(([label, value]) => `${label.padEnd(width)}  ${value}`)
}

function scaled(value: number, units: readonly [number, string][]): string {
  let [divisor, unit] = units[0]!
  for (const [d, u] of units) if (value >= d) [divisor, unit] = [d, u]
  const n = value / divisor
  const text = n < 10 && !Number.isInteger(n) ? n.toFixed(1).replace(/\.0$/, '') : String(Math.round(n))
  return `${text} ${unit}`
}

/** 1536 -> "1.5 KiB". */
export function formatBytes(bytes: number): string {
  return scaled(bytes, [
    [1, 'B'],
    [1024, 'KiB'],
    [1024 ** 2, 'MiB'],
    [1024 ** 3, 'GiB'],
    [1024 ** 4, 'TiB'],
  ])
}

/** 90000 -> "1.5 min"; null -> "-". */
export function formatMs(ms: number | null): string {
  if (ms === null) return '-'
  return scaled(ms, [
    [1, 'ms'],
    [1000, 's'],
    [60_000, 'min'],
    [3_600_000, 'h'],
    [86_400_000, 'd'],
  ])
}

/** Milliseconds since the epoch as ISO 8601 (UTC). */
export function formatTime(ms: number): string {
  return new Date(ms).toISOString()
}

function base64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64')
}

/**
 * A message as one JSON object: its fields as the TypeScript type names
 * them, with `data` as the decoded JSON value, or base64 for bytes;
 * `dataEncoding` says which (`json` or `base64`).
 */
export function messageJson(message: StoredMessage & { readonly attempt?: number }): Record<string, unknown> {
  const data = message.data
  return {
    id: message.id,
    topic: message.topic,
    key: message.key,
    partition: message.partition,
    offset: message.offset,
    timestamp: message.timestamp,
    ...(message.attempt === undefined ? {} : { attempt: message.attempt }),
    headers: message.headers,
    ...(data instanceof Uint8Array ? { dataEncoding: 'base64', data: base64(data) } : { dataEncoding: 'json', data }),
  }
}

/** Text for a payload on a human line: strings as they are, bytes as `base64:…`, anything else as compact JSON. */
export function formatData(data: unknown): string {
  if (data instanceof Uint8Array) return `base64:${base64(data)}`
  // eslint-disable-next-line no-control-regex -- a string with control characters would break the line: quote it.
  if (typeof data === 'string' && !/[\u0000-\u001f\u007f]/.test(data)) return data
  return JSON.stringify(data)
}

/** A message on one human line: `partition:offset  key=…  [header=value …]  data`. */
export function messageLine(message: StoredMessage): string {
  const parts = [`${message.partition}:${message.offset}`]
  if (message.key !== null) parts.push(`key=${message.key}`)
  const headers = Object.entries(message.headers)
  if (headers.length > 0) parts.push(`[${headers.map(([name, value]) => `${name}=${value}`).join(' ')}]`)
  parts.push(formatData(message.data))
  return parts.join('  ')
}
