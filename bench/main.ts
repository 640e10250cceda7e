// npm run bench: Sluice embedded, then Sluice's broker and its peers side by side in one run. Writes the
// tables and JSON under bench/results/, an SVG chart, and the last run's table into BENCHMARKS.md.
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { compare } from './compare.ts'
import { embeddedConsume } from './embedded-consume.ts'
import { embeddedPublish } from './embedded-publish.ts'
import { embeddedVsSqlite } from './embedded-vs-sqlite.ts'
import { flowCost } from './flow-cost.ts'
import { comparisonChart, comparisonTable } from './lib/compare-report.ts'
import { describeFsyncs } from './lib/disk.ts'
import { measureLoopback } from './lib/loopback.ts'
import { machine, table, writeResults } from './lib/report.ts'

const log = (line: string): void => void process.stdout.write(`${line}\n`)
const started = performance.now()
const host = machine()
const hostLine = `${String(host['cpu'])}, ${host['cores']} cores, ${host['memoryGiB']} GiB, Node.js ${String(host['node'])}, ${String(host['platform'])}`
log(`machine: ${hostLine}`)

log('embedded publish, 1 KiB payloads (Sluice in the publishing process):')
const embedded = await embeddedPublish(log)
log('embedded end-to-end (publish -> handler -> ack), 1 KiB payloads:')
const consumeRows = await embeddedConsume(log)
log('flow control cost: the same publishes with a backlog bound and a rate limit that are never reached:')
const flow = await flowCost(log)
const embeddedRows = [...embedded.rows, ...consumeRows, ...flow.rows]
log('')
log(table(embeddedRows))
log(
  `group commit: 64 concurrent fsync publishers reach ${embedded.groupCommitRatio.toFixed(1)}x the rate of one publisher waiting on its own fsync`,
)
await writeResults('embedded', {
  machine: host,
  at: new Date().toISOString(),
  ...embedded,
  flowControl: { cost: flow.cost, checkNs: flow.checkNs, checkShare: flow.checkShare },
  rows: embeddedRows,
})

log('embedded against SQLite as a queue (better-sqlite3, WAL), 256 B payloads, each case in a fresh process:')
const sqlite = await embeddedVsSqlite(log)
await writeResults('sqlite', { machine: host, at: new Date().toISOString(), rows: sqlite.rows })
log(`(embedded section: ${((performance.now() - started) / 60_000).toFixed(1)} minutes)`)
log('')
const loopback = await measureLoopback()
log(
  `loopback TCP between two Node processes: ${Math.round(loopback.roundTripsPerSec)} round trips/s one at a time, ${Math.round(loopback.streamedFramesPerSec)} frames of 64 B/s streamed`,
)
log('Sluice through its broker and its peers, clients in their own processes over loopback:')
const only = process.env['BENCH_SCENARIOS']
const peers = await compare(log, only === undefined ? null : new Set(only.split(',')))
const durability = new Map(peers.systems.map((s) => [s.name, s.durability]))
const comparison = comparisonTable(peers.rows, durability)
log('')
log(comparison)
const skipped = peers.skipped.map((s) => `- ${s.system}: skipped (${s.why})`).join('\n')
if (skipped !== '') log(skipped)
const at = new Date().toISOString()
const path = await writeResults('compare', {
  machine: host,
  at,
  systems: peers.systems,
  skipped: peers.skipped,
  rows: peers.rows,
})
const results = join(import.meta.dirname, 'results')
await writeFile(join(results, 'compare-latest.svg'), comparisonChart(peers.rows, hostLine))
const minutes = (performance.now() - started) / 60_000

// BENCHMARKS.md keeps the last run's table between its markers.
const doc = join(import.meta.dirname, '..', 'BENCHMARKS.md')
const text = await readFile(doc, 'utf8')
const [before, rest] = text.split('<!-- results:start -->') as [string, string | undefined]
const after = rest?.split('<!-- results:end -->')[1]
if (after !== undefined) {
  const systems = peers.systems
    .map((s) => `- **${s.name}**: ${s.durability}; key ordering: ${s.keyOrdering}`)
    .join('\n')
  const block = [
    '<!-- results:start -->',
    '',
    `Last run: ${at.slice(0, 16).replace('T', ' ')} UTC on ${hostLine}; the whole \`npm run bench\` took ${minutes.toFixed(1)} minutes.`,
    '',
    systems,
    ...(skipped === '' ? [] : ['', skipped]),
    '',
    comparison,
    '',
    `Embedded (Sluice in the publishing process), same run: disk ${embedded.disk.writeMBPerSec.toFixed(0)} MB/s sequential, write+fdatasync p50 ${embedded.disk.fsync.p50Ms} ms, p99 ${embedded.disk.fsync.p99Ms} ms, p99.9 ${embedded.disk.fsync.p999Ms} ms (${embedded.disk.fsyncsPerSec.toFixed(0)} fsyncs/s one at a time).`,
    '',
    `Limits, same run: ${describeFsyncs(embedded.disk.fsyncs)}; loopback TCP between two Node processes ${Math.round(loopback.roundTripsPerSec).toLocaleString('en-US')} round trips/s one at a time, ${Math.round(loopback.streamedFramesPerSec).toLocaleString('en-US')} frames of 64 B/s streamed.`,
    '',
    table(embeddedRows),
    '',
    'Embedded against SQLite as a queue, same run (medians of 3, each case in a fresh process):',
    '',
    sqlite.table,
    '',
    '<!-- results:end -->',
  ].join('\n')
  await writeFile(doc, `${before}${block}${after}`)
}
log(`results: ${path}, bench/results/compare-latest.svg, BENCHMARKS.md (${minutes.toFixed(1)} minutes)`)
