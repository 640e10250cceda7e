import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'

/** One measured row of a benchmark run. */
export interface Row {
  readonly scenario: string
  readonly system: string
  readonly settings: string
  readonly msgsPerSec: number
  readonly mbPerSec?: number
  readonly p50Ms?: number
  readonly p99Ms?: number
  readonly note?: string
}

export function machine(): Record<string, string | number> {
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cores: cpus().length,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
  }
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined) return ''
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

/** A plain-text table of rows, for the terminal and for BENCHMARKS.md. */
export function table(rows: readonly Row[]): string {
  const header = ['scenario', 'system', 'settings', 'msgs/s', 'MB/s', 'p50 ms', 'p99 ms', 'note']
  const body = rows.map((r) => [
    r.scenario,
    r.system,
    r.settings,
    fmt(r.msgsPerSec),
    fmt(r.mbPerSec, 1),
    fmt(r.p50Ms, 3),
    fmt(r.p99Ms, 3),
    r.note ?? '',
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)))
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...body.map(line)].join('\n')
}

/** Writes `bench/results/<name>-<timestamp>.json` and `<name>-latest.json`; returns the path. */
export async function writeResults(name: string, data: unknown): Promise<string> {
  const dir = join(import.meta.dirname, '..', 'results')
  await mkdir(dir, { recursive: true })
  const stamp = new Date().toISOString().replace(/[:.]/g, '-')
  const body = JSON.stringify(data, null, 2)
  const path = join(dir, `${name}-${stamp}.json`)
  await writeFile(path, body)
  await writeFile(join(dir, `${name}-latest.json`), body)
  return path
}
