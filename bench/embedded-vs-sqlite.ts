// Sluice embedded against SQLite as a queue (better-sqlite3, WAL), the thing a Node user would otherwise pick for
// an embedded durable queue: the same scenarios, 256-byte payloads, one partition, each case in a fresh process
// (bench/sqlite-case.ts), the two systems in turns, medians of 3. npm run bench runs it; alone:
// node --import tsx bench/embedded-vs-sqlite.ts
import { execFileSync } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Row } from './lib/report.ts'
import { scenarios, type CaseResult, type Scenario } from './sqlite-case.ts'

const rounds = 3

const described: Record<Scenario, string> = {
  'durable-serial': 'durable (fsync / FULL), one publish awaited at a time',
  'durable-64': 'durable, 64 publish() in flight / 64 inserts a transaction',
  'durable-batch-64': 'durable, publishBatch(64) / 64 inserts a transaction',
  'relaxed-serial': 'relaxed (interval 100 ms / NORMAL), one at a time',
  'relaxed-64': 'relaxed, 64 publish() in flight / 64 inserts a transaction',
  'relaxed-batch-64': 'relaxed, publishBatch(64) / 64 inserts a transaction',
  'consume-ack-durable': 'consume + ack, durable, concurrency 1 / claim + delete',
  'latency-relaxed-2000': 'publish to handler at 2,000/s, relaxed (SQLite woken in process)',
}

function runCase(system: 'sluice' | 'sqlite', scenario: Scenario, dir: string): CaseResult {
  const out = execFileSync(
    process.execPath,
    ['--import', 'tsx', join(import.meta.dirname, 'sqlite-case.ts'), system, scenario, dir],
    { encoding: 'utf8' },
  )
  return JSON.parse(out.trim().split('\n').at(-1)!) as CaseResult
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export interface SqliteComparison {
  readonly rows: Row[]
  /** Scenario, Sluice, SQLite, and Sluice / SQLite (throughput; for latency, SQLite's p99 / Sluice's). */
  readonly table: string
}

export async function embeddedVsSqlite(log: (line: string) => void): Promise<SqliteComparison> {
  const base = await mkdtemp(join(tmpdir(), 'sluice-vs-sqlite-'))
  const rows: Row[] = []
  const lines = ['| scenario | Sluice | SQLite | Sluice / SQLite | RSS MB Sluice / SQLite |', '|---|---|---|---|---|']
  try {
    for (const scenario of scenarios) {
      const results = { sluice: [] as CaseResult[], sqlite: [] as CaseResult[] }
      for (let round = 0; round < rounds; round++)
        for (const system of round % 2 === 0 ? (['sluice', 'sqlite'] as const) : (['sqlite', 'sluice'] as const)) {
          const dir = await mkdtemp(join(base, `${system}-${scenario}-`))
          results[system].push(runCase(system, scenario, dir))
          await rm(dir, { recursive: true, force: true })
        }
      const m = (system: 'sluice' | 'sqlite', key: keyof CaseResult): number =>
        median(results[system].map((r) => r[key] ?? NaN))
      const latency = scenario.startsWith('latency')
      for (const system of ['sluice', 'sqlite'] as const)
        rows.push({
          scenario: 'embedded vs SQLite',
          system,
          settings: described[scenario],
          msgsPerSec: m(system, 'msgsPerSec'),
          ...(latency ? { p50Ms: m(system, 'p50Ms'), p99Ms: m(system, 'p99Ms') } : {}),
          note: `RSS ${m(system, 'rssMB').toFixed(0)} MB`,
        })
      const figure = (system: 'sluice' | 'sqlite'): string =>
        latency
          ? `p50 ${m(system, 'p50Ms')} / p99 ${m(system, 'p99Ms')} ms`
          : `${Math.round(m(system, 'msgsPerSec')).toLocaleString('en-US')}/s`
      const ratio = latency
        ? m('sqlite', 'p99Ms') / m('sluice', 'p99Ms')
        : m('sluice', 'msgsPerSec') / m('sqlite', 'msgsPerSec')
      lines.push(
        `| ${described[scenario]} | ${figure('sluice')} | ${figure('sqlite')} | ${ratio.toFixed(2)}${latency ? ' (p99, higher is better)' : ''} | ${m('sluice', 'rssMB').toFixed(0)} / ${m('sqlite', 'rssMB').toFixed(0)} |`,
      )
      log(`  ${lines.at(-1)!}`)
    }
  } finally {
    await rm(base, { recursive: true, force: true })
  }
  return { rows, table: lines.join('\n') }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await embeddedVsSqlite((line) => void process.stdout.write(`${line}\n`))
  process.stdout.write(`\n${table}\n`)
}
