import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open, type Durability } from '../src/index.ts'
import { describeFsyncs, measureDisk, type DiskLimits } from './lib/disk.ts'
import { latencyOf, newHistogram, nowNs, scenarioSeconds } from './lib/measure.ts'
import type { Row } from './lib/report.ts'

/**
 * Embedded publish: one process, 1 KiB payloads, per durability mode,
 * publishing one message per call or 100 per publishBatch call, from 1 or 64
 * concurrent publishers that each wait for their own receipts.
 */

const payload = Buffer.alloc(1024, 97)
const batchSize = 100

interface Case {
  readonly durability: Durability
  readonly publishers: number
  readonly batched: boolean
}

async function runCase(dir: string, c: Case, seconds: number): Promise<Row> {
  const url = c.durability === 'memory' ? 'memory:' : `file:${dir}`
  const sluice = await open({ url })
  const topic = `bench-${c.durability}-${c.publishers}-${c.batched ? 'b' : 's'}`
  await sluice.createTopic(topic, { durability: c.durability, fsyncIntervalMs: 100 })
  const batch = Array.from({ length: batchSize }, () => ({ data: payload }))
  const h = newHistogram()
  let messages = 0
  const deadline = performance.now() + seconds * 1000
  const start = performance.now()
  await Promise.all(
    Array.from({ length: c.publishers }, async () => {
      while (performance.now() < deadline) {
        const t0 = nowNs()
        if (c.batched) {
          await sluice.publishBatch(topic, batch)
          messages += batchSize
        } else {
          await sluice.publish(topic, payload)
          messages++
        }
        h.record(Math.max(1, nowNs() - t0))
      }
    }),
  )
  const elapsed = (performance.now() - start) / 1000
  await sluice.close()
  const latency = latencyOf(h)
  const msgsPerSec = messages / elapsed
  return {
    scenario: 'embedded publish',
    system: 'sluice',
    settings: `${c.durability}, ${c.publishers} publisher${c.publishers > 1 ? 's' : ''}, ${c.batched ? `batches of ${batchSize}` : 'one per call'}`,
    msgsPerSec,
    mbPerSec: (msgsPerSec * payload.length) / 1e6,
    p50Ms: latency.p50Ms,
    p99Ms: latency.p99Ms,
    note: c.batched ? 'latency per batch call' : 'latency per publish',
  }
}

export interface EmbeddedPublishResult {
  readonly disk: DiskLimits
  readonly rows: Row[]
  readonly groupCommitRatio: number
}

export async function embeddedPublish(log: (line: string) => void): Promise<EmbeddedPublishResult> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-'))
  try {
    const disk = await measureDisk(dir)
    log(
      `disk: ${disk.writeMBPerSec.toFixed(0)} MB/s sequential write; write+fdatasync p50 ${disk.fsync.p50Ms} ms, p99 ${disk.fsync.p99Ms} ms (${disk.fsyncsPerSec.toFixed(0)} fsyncs/s)`,
    )
    log(`  ${describeFsyncs(disk.fsyncs)}`)
    const rows: Row[] = []
    for (const durability of ['fsync', 'interval', 'memory'] as const) {
      for (const publishers of [1, 64]) {
        for (const batched of [false, true]) {
          const row = await runCase(
            join(dir, `${durability}-${publishers}-${batched}`),
            { durability, publishers, batched },
            scenarioSeconds(),
          )
          log(
            `  ${row.settings}: ${Math.round(row.msgsPerSec).toLocaleString('en-US')} msgs/s, p50 ${row.p50Ms} ms, p99 ${row.p99Ms} ms`,
          )
          rows.push(row)
        }
      }
    }
    // One publisher waiting on its own fsync can do at best one publish per fdatasync of a growing file.
    const limit = 1000 / disk.fsyncs.growingDirect.p50Ms
    const at = rows.findIndex((r) => r.settings === 'fsync, 1 publisher, one per call')
    const singleRow = rows[at]!
    rows[at] = {
      ...singleRow,
      note: `${singleRow.note ?? ''}; ${(singleRow.msgsPerSec / limit).toFixed(2)} of the disk's ${Math.round(limit)} direct fdatasyncs/s`,
    }
    const single = singleRow.msgsPerSec
    const many = rows.find((r) => r.settings === 'fsync, 64 publishers, one per call')!.msgsPerSec
    return { disk, rows, groupCommitRatio: many / single }
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
