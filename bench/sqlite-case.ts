// One case of bench/embedded-vs-sqlite.ts in a process of its own (so each starts cold and its RSS is its own):
// `node --import tsx bench/sqlite-case.ts <sluice|sqlite> <scenario> <dir>` prints one JSON line.
import { join } from 'node:path'
import Database from 'better-sqlite3'
import { open } from '../src/index.ts'
import { latencyOf, newHistogram, nowNs } from './lib/measure.ts'

export const scenarios = [
  'durable-serial',
  'durable-64',
  'durable-batch-64',
  'relaxed-serial',
  'relaxed-64',
  'relaxed-batch-64',
  'consume-ack-durable',
  'latency-relaxed-2000',
] as const
export type Scenario = (typeof scenarios)[number]
export interface CaseResult {
  readonly msgsPerSec: number
  readonly p50Ms?: number
  readonly p99Ms?: number
  readonly rssMB: number
}

const payload = Buffer.alloc(256, 97)
const messages = 20_000
const latencyRate = 2000
const latencySeconds = 5

const countOf = (scenario: Scenario): number => (scenario === 'durable-serial' ? messages / 4 : messages)
const isDurable = (scenario: Scenario): boolean => scenario.startsWith('durable') || scenario === 'consume-ack-durable'

/** Calls `publish(n)` for every message due at `latencyRate` per second, paced by the wall clock, then yields. */
async function paced(publish: (n: number) => unknown): Promise<void> {
  const total = latencyRate * latencySeconds
  const start = performance.now()
  let sent = 0
  while (sent < total) {
    const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * latencyRate))
    while (sent < due) publish(sent++)
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
}

async function sluiceCase(scenario: Scenario, dir: string): Promise<Omit<CaseResult, 'rssMB'>> {
  const sluice = await open({ url: `file:${dir}` })
  try {
    const durability = isDurable(scenario) ? 'fsync' : 'interval'
    await sluice.createTopic('t', { partitions: 1, durability, fsyncIntervalMs: 100 })
    const n = countOf(scenario)
    const started = performance.now()
    const rate = (count: number): number => count / ((performance.now() - started) / 1000)
    if (scenario.endsWith('-serial')) {
      for (let i = 0; i < n; i++) await sluice.publish('t', payload)
      return { msgsPerSec: rate(n) }
    }
    if (scenario.endsWith('batch-64')) {
      for (let i = 0; i < n; i += 64)
        await sluice.publishBatch(
          't',
          Array.from({ length: 64 }, () => ({ data: payload })),
        )
      return { msgsPerSec: rate(n) }
    }
    if (scenario.endsWith('-64')) {
      for (let i = 0; i < n; i += 64) await Promise.all(Array.from({ length: 64 }, () => sluice.publish('t', payload)))
      return { msgsPerSec: rate(n) }
    }
    if (scenario === 'consume-ack-durable') {
      for (let i = 0; i < n; i += 500)
        await sluice.publishBatch(
          't',
          Array.from({ length: 500 }, () => ({ data: payload })),
        )
      let handled = 0
      let all!: () => void
      const done = new Promise<void>((resolve) => (all = resolve))
      const from = performance.now()
      const sub = await sluice.subscribe(
        't',
        's',
        () => {
          if (++handled === n) all()
        },
        { concurrency: 1 },
      )
      await done
      const msgsPerSec = n / ((performance.now() - from) / 1000)
      await sub.close()
      return { msgsPerSec }
    }
    // latency: the publish time travels in the payload
    const h = newHistogram()
    const total = latencyRate * latencySeconds
    let seen = 0
    let all!: () => void
    const done = new Promise<void>((resolve) => (all = resolve))
    const sub = await sluice.subscribe<Buffer>('t', 's', (m) => {
      h.record(Math.max(1, nowNs() - Number(m.data.readBigInt64LE(0))))
      if (++seen === total) all()
    })
    await paced(() => {
      const stamped = Buffer.from(payload)
      stamped.writeBigInt64LE(BigInt(nowNs()), 0)
      void sluice.publish('t', stamped)
    })
    await done
    await sub.close()
    const l = latencyOf(h)
    return { msgsPerSec: latencyRate, p50Ms: l.p50Ms, p99Ms: l.p99Ms }
  } finally {
    await sluice.close()
  }
}

/**
 * SQLite as a queue, as a Node user would build it: WAL, synchronous FULL (an fsync per commit) when durable,
 * NORMAL when relaxed; a claim is one UPDATE ... RETURNING of the oldest unclaimed row, an ack its DELETE.
 */
async function sqliteCase(scenario: Scenario, dir: string): Promise<Omit<CaseResult, 'rssMB'>> {
  const db = new Database(join(dir, 'queue.db'))
  try {
    db.pragma('journal_mode = WAL')
    db.pragma(`synchronous = ${isDurable(scenario) ? 'FULL' : 'NORMAL'}`)
    db.exec('CREATE TABLE queue (id INTEGER PRIMARY KEY, payload BLOB NOT NULL, claimed INTEGER NOT NULL DEFAULT 0)')
    const insert = db.prepare('INSERT INTO queue (payload) VALUES (?)')
    const insertMany = db.transaction((count: number, data: Buffer) => {
      for (let i = 0; i < count; i++) insert.run(data)
    })
    const claim = db.prepare(
      'UPDATE queue SET claimed = 1 WHERE id = (SELECT id FROM queue WHERE claimed = 0 ORDER BY id LIMIT 1) RETURNING id, payload',
    )
    const ack = db.prepare('DELETE FROM queue WHERE id = ?')
    const n = countOf(scenario)
    const started = performance.now()
    const rate = (count: number): number => count / ((performance.now() - started) / 1000)
    if (scenario.endsWith('-serial')) {
      for (let i = 0; i < n; i++) insert.run(payload)
      return { msgsPerSec: rate(n) }
    }
    if (scenario.endsWith('-64')) {
      for (let i = 0; i < n; i += 64) insertMany(64, payload)
      return { msgsPerSec: rate(n) }
    }
    if (scenario === 'consume-ack-durable') {
      db.pragma('synchronous = NORMAL')
      for (let i = 0; i < n; i += 500) insertMany(500, payload)
      db.pragma('synchronous = FULL')
      const from = performance.now()
      for (let i = 0; i < n; i++) {
        const row = claim.get() as { id: number } | undefined
        if (row === undefined) throw new Error('the queue ran dry early')
        ack.run(row.id)
      }
      return { msgsPerSec: n / ((performance.now() - from) / 1000) }
    }
    // latency: the consumer is woken in the process after each insert (no polling), and drains what it finds
    const h = newHistogram()
    let wakeQueued = false
    const drain = (): void => {
      wakeQueued = false
      for (let row = claim.get() as { id: number; payload: Buffer } | undefined; row !== undefined;) {
        h.record(Math.max(1, nowNs() - Number(row.payload.readBigInt64LE(0))))
        ack.run(row.id)
        row = claim.get() as { id: number; payload: Buffer } | undefined
      }
    }
    await paced(() => {
      const stamped = Buffer.from(payload)
      stamped.writeBigInt64LE(BigInt(nowNs()), 0)
      insert.run(stamped)
      if (!wakeQueued) {
        wakeQueued = true
        setImmediate(drain)
      }
    })
    await new Promise((resolve) => setImmediate(resolve))
    const l = latencyOf(h)
    return { msgsPerSec: latencyRate, p50Ms: l.p50Ms, p99Ms: l.p99Ms }
  } finally {
    db.close()
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [system, scenario, dir] = process.argv.slice(2) as ['sluice' | 'sqlite', Scenario, string]
  const result = system === 'sluice' ? await sluiceCase(scenario, dir) : await sqliteCase(scenario, dir)
  process.stdout.write(`${JSON.stringify({ ...result, rssMB: process.memoryUsage().rss / 1e6 })}\n`)
}
