import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { systemClock } from '../src/core/clock.ts'
import { PayloadFormat } from '../src/core/codec.ts'
import { TopicFlow } from '../src/engine/flow.ts'
import { encodedSize, type RecordDraft } from '../src/engine/log/record.ts'
import { open, type TopicConfig } from '../src/index.ts'
import type { Row } from './lib/report.ts'

/**
 * What flow control costs a publisher: the same in-memory publish loop on a
 * topic without limits, and on one with a backlog bound and a rate limit
 * that are checked on every publish but never reached. In-memory topics, so
 * that no disk hides the cost. Variants alternate round by round (ABBA, with
 * a full garbage collection before each round, so neither pays for the
 * other's garbage), and the median round of each is compared, so drift on a
 * shared machine hits both.
 */

setFlagsFromString('--expose-gc')
const collectGarbage = runInNewContext('gc') as () => void

const payload = Buffer.alloc(100, 97)
const rounds = 8
const roundMs = 1000

const variants: Record<string, TopicConfig> = {
  'no limits': {},
  'limits + rate limit': {
    limits: { maxMessages: 1_000_000_000, maxBytes: 1024 ** 4, overflow: 'reject' },
    rateLimit: { perSecond: 10_000_000, burst: 1_000_000, onLimit: 'reject', per: 'producer' },
  },
}

async function round(config: TopicConfig, batched: boolean, n: number): Promise<number> {
  const sluice = await open({ url: 'memory:' })
  const topic = `cost-${n}`
  // Memory enough that no round spills: the cost measured is the checks, not the disk.
  await sluice.createTopic(topic, { ...config, partitions: 1, memoryBytes: 4 * 1024 ** 3 })
  const batch = Array.from({ length: 100 }, () => ({ data: payload }))
  let messages = 0
  const start = performance.now()
  const deadline = start + roundMs
  // 16 concurrent publishers, each waiting for its own receipts.
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (performance.now() < deadline) {
        if (batched) {
          await sluice.publishBatch(topic, batch)
          messages += batch.length
        } else {
          await sluice.publish(topic, payload)
          messages++
        }
      }
    }),
  )
  const rate = messages / ((performance.now() - start) / 1000)
  await sluice.close()
  return rate
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

export interface FlowCostResult {
  readonly rows: Row[]
  /** Throughput lost to the checks, per mode: 1 - with / without (negative: within noise the other way). */
  readonly cost: Record<string, number>
  /** The checks alone: nanoseconds per admitted publish (sizing, rate window, backlog bound, release). */
  readonly checkNs: number
  /** The checks' share of one publish's time without limits (one per call). */
  readonly checkShare: number
}

/**
 * The checks alone, timed directly: what the engine runs per publish on a
 * limited topic (size the message, admit through the rate window and the
 * backlog bound, release), two million times.
 */
async function checkNanoseconds(): Promise<number> {
  const sluice = await open({ url: 'memory:' })
  const info = await sluice.createTopic('sized', variants['limits + rate limit'])
  await sluice.close()
  const flow = new TopicFlow(info, systemClock, {
    backlog: () => ({ messages: 1000, bytes: 100_000 }),
    evictOldest: () => Promise.resolve(0),
  })
  const draft: RecordDraft = {
    id: '0190f3c2-7b20-7000-8000-00000000c0de',
    producerId: '0190f3c2-7b20-7000-8000-0000000000aa',
    sequence: 1,
    key: null,
    headers: {},
    payload,
    format: PayloadFormat.Bytes,
    deliverAt: 0,
  }
  const n = 2_000_000
  let best = Infinity
  let base = systemClock.now()
  for (let pass = 0; pass < 5; pass++, base += 10_000) {
    const start = process.hrtime.bigint()
    for (let i = 0; i < n; i++) {
      const bytes = flow.countsBytes ? encodedSize(draft) : 0
      // The engine reads the clock once per publish with or without limits: not part of the checks' cost.
      if (!flow.tryAdmit(1, bytes, draft.producerId, base + (i >> 10)))
        throw new Error('the bench topic refused a publish')
      flow.release(1, bytes)
    }
    best = Math.min(best, Number(process.hrtime.bigint() - start) / n)
  }
  return best
}

export async function flowCost(log: (line: string) => void): Promise<FlowCostResult> {
  const rows: Row[] = []
  const cost: Record<string, number> = {}
  let n = 0
  for (const batched of [false, true]) {
    const mode = batched ? 'batches of 100' : 'one per call'
    const samples: Record<string, number[]> = Object.fromEntries(Object.keys(variants).map((v) => [v, []]))
    // Warm-up: each variant's code paths compiled before anything is counted.
    for (let w = 0; w < 2; w++) for (const config of Object.values(variants)) await round(config, batched, n++)
    const names = Object.keys(variants)
    for (let r = 0; r < rounds; r++) {
      for (const name of r % 2 === 0 ? names : [...names].reverse()) {
        collectGarbage()
        samples[name]!.push(await round(variants[name]!, batched, n++))
      }
    }
    const base = median(samples['no limits']!)
    for (const name of Object.keys(variants)) {
      const rate = median(samples[name]!)
      rows.push({
        scenario: 'flow control cost',
        system: 'sluice',
        settings: `memory, 100 B, 16 publishers, ${mode}, ${name}`,
        msgsPerSec: rate,
        note: `median of ${rounds} alternating rounds; ${(rate / base).toFixed(3)}x no limits`,
      })
    }
    cost[mode] = 1 - median(samples['limits + rate limit']!) / base
    log(
      `  ${mode}: no limits ${Math.round(base).toLocaleString('en-US')} msgs/s, with limits and rate limit ${Math.round(median(samples['limits + rate limit']!)).toLocaleString('en-US')} msgs/s: cost ${(cost[mode] * 100).toFixed(1)}%`,
    )
  }
  const checkNs = await checkNanoseconds()
  const publishNs = 1e9 / rows.find((r) => r.settings.includes('one per call, no limits'))!.msgsPerSec
  const checkShare = checkNs / publishNs
  log(
    `  the checks alone: ${checkNs.toFixed(0)} ns per publish, ${(checkShare * 100).toFixed(2)}% of a ${(publishNs / 1000).toFixed(1)} µs publish`,
  )
  return { rows, cost, checkNs, checkShare }
}

if (process.argv[1]?.endsWith('flow-cost.ts') === true) {
  await flowCost((line) => void process.stdout.write(`${line}\n`))
}
