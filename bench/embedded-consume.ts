import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from '../src/index.ts'
import { latencyOf, newHistogram, scenarioSeconds } from './lib/measure.ts'
import type { Row } from './lib/report.ts'

/**
 * End to end in one process: publish -> handler -> ack, at-least-once,
 * `interval` durability, 1 KiB payloads.
 *   throughput: a producer publishing batches of 100 (8 batches in flight) and
 *     a consumer (concurrency 64) running together; the rate is messages
 *     acknowledged per second until all are handled. Steady: the producer stays
 *     at most 10,000 messages ahead of the consumer (a consumer that keeps up,
 *     reading from memory); burst: unbounded (the consumer drains a growing
 *     backlog from disk while sharing the CPU with the producer).
 *   latency: a steady 5,000 msgs/s, one publish per message; the payload
 *     carries its send time, the handler measures publish-to-handler.
 */

const payloadBytes = 1024

async function throughput(dir: string, total: number, maxAhead: number): Promise<Row> {
  const sluice = await open({ url: `file:${join(dir, `throughput-${maxAhead}`)}` })
  await sluice.createTopic('e2e', { partitions: 4, durability: 'interval' })
  const payload = Buffer.alloc(payloadBytes, 7)
  let handled = 0
  let finished!: () => void
  const done = new Promise<void>((resolve) => (finished = resolve))
  const start = performance.now()
  await sluice.subscribe(
    'e2e',
    'bench',
    () => {
      if (++handled === total) finished()
    },
    { concurrency: 64, prefetch: 256, ordering: 'none' },
  )
  const batch = Array.from({ length: 100 }, () => ({ data: payload }))
  let sent = 0
  await Promise.all(
    Array.from({ length: 8 }, async () => {
      while (sent < total) {
        while (sent - handled > maxAhead) await new Promise((resolve) => setImmediate(resolve))
        sent += 100
        await sluice.publishBatch('e2e', batch)
      }
    }),
  )
  await done
  const seconds = (performance.now() - start) / 1000
  await sluice.close()
  const msgsPerSec = total / seconds
  return {
    scenario: 'embedded end-to-end',
    system: 'sluice',
    settings: `interval, at-least-once, 4 partitions, batches of 100, concurrency 64, ${Number.isFinite(maxAhead) ? `steady (producer <= ${maxAhead.toLocaleString('en-US')} ahead)` : 'burst (producer unbounded)'}`,
    msgsPerSec,
    mbPerSec: (msgsPerSec * payloadBytes) / 1e6,
    note: `${total.toLocaleString('en-US')} messages published and acknowledged`,
  }
}

async function latency(dir: string, ratePerSec: number, seconds: number): Promise<Row> {
  const sluice = await open({ url: `file:${join(dir, 'latency')}` })
  await sluice.createTopic('lat', { partitions: 4, durability: 'interval' })
  const h = newHistogram()
  let received = 0
  await sluice.subscribe<Buffer>(
    'lat',
    'bench',
    (m) => {
      const sentAt = m.data.readDoubleBE(0)
      h.record(Math.max(1, Math.round((performance.now() - sentAt) * 1e6)))
      received++
    },
    { concurrency: 16, ordering: 'none' },
  )
  const total = ratePerSec * seconds
  const start = performance.now()
  let sent = 0
  // Paced by the wall clock: the n-th message is due at n / rate; publish what is due, then yield.
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * ratePerSec))
    while (sent < due) {
      const payload = Buffer.alloc(payloadBytes, 1)
      payload.writeDoubleBE(performance.now(), 0)
      void sluice.publish('lat', payload)
      sent++
    }
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  while (received < total) await new Promise((resolve) => setTimeout(resolve, 5))
  await sluice.close()
  const l = latencyOf(h)
  return {
    scenario: 'embedded publish-to-handler latency',
    system: 'sluice',
    settings: `interval, at-least-once, steady ${ratePerSec.toLocaleString('en-US')} msgs/s`,
    msgsPerSec: ratePerSec,
    p50Ms: l.p50Ms,
    p99Ms: l.p99Ms,
    note: `p99.9 ${l.p999Ms} ms, max ${l.maxMs} ms over ${total.toLocaleString('en-US')} messages`,
  }
}

export async function embeddedConsume(log: (line: string) => void): Promise<Row[]> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-consume-'))
  try {
    const rows: Row[] = []
    for (const maxAhead of [10_000, Infinity]) {
      const t = await throughput(dir, Math.max(100_000, Math.round(scenarioSeconds() * 100_000)), maxAhead)
      log(`  end-to-end, ${t.settings.split(', ').at(-1)}: ${Math.round(t.msgsPerSec).toLocaleString('en-US')} msgs/s`)
      rows.push(t)
    }
    const l = await latency(dir, 5000, Math.max(3, scenarioSeconds()))
    log(`  latency at 5,000 msgs/s: p50 ${l.p50Ms} ms, p99 ${l.p99Ms} ms (${l.note})`)
    rows.push(l)
    return rows
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}
