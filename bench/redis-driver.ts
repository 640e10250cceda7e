// Sluice on Redis against raw Redis Streams: the same server (the machine's Redis), the same client library
// (ioredis), the same payloads, interleaved in one run, medians of 5 rounds. Raw Redis gets what it does best: XADD
// pipelined 64 at a time, XREADGROUP COUNT 64 with one XACK per batch. Key-ordered consumption is Sluice's alone
// (raw Streams have no per-key gate); it is measured, not compared.
//
// npm run bench:redis. SLUICE_BENCH_REDIS_URL picks another server, SLUICE_BENCH_REDIS_MESSAGES the count.
import { Redis } from 'ioredis'
import { open } from '../src/index.ts'
import { uuidv7 } from '../src/core/ids.ts'
import type { Row } from './lib/report.ts'

const url = process.env['SLUICE_BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379'
const n = Number(process.env['SLUICE_BENCH_REDIS_MESSAGES'] ?? 20_000)
const payload = Buffer.alloc(1024, 'x')
const batch = 64
const rounds = 5

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)]!
}

async function rawPublish(redis: Redis, stream: string): Promise<number> {
  const started = performance.now()
  for (let i = 0; i < n; i += batch) {
    const pipe = redis.pipeline()
    for (let j = i; j < Math.min(n, i + batch); j++) pipe.xadd(stream, '*', 'd', payload)
    await pipe.exec()
  }
  return n / ((performance.now() - started) / 1000)
}

async function rawConsume(redis: Redis, stream: string): Promise<number> {
  await redis.xgroup('CREATE', stream, 'g', '0', 'MKSTREAM')
  const started = performance.now()
  let got = 0
  while (got < n) {
    const reply = (await redis.xreadgroup('GROUP', 'g', 'c', 'COUNT', batch, 'STREAMS', stream, '>')) as
      [string, [string, string[]][]][] | null
    const entries = reply?.[0]?.[1] ?? []
    if (entries.length === 0) continue
    await redis.xack(stream, 'g', ...entries.map((e) => e[0]))
    got += entries.length
  }
  return n / ((performance.now() - started) / 1000)
}

async function sluiceRun(
  prefix: string,
  ordering: 'none' | 'key',
): Promise<{ publishBatch: number; publishInFlight: number; consume: number }> {
  const sluice = await open(`${url}?prefix=${prefix}`)
  try {
    await sluice.createTopic('bench', { partitions: 4 })
    let started = performance.now()
    for (let i = 0; i < n; i += batch)
      await sluice.publishBatch(
        'bench',
        Array.from({ length: Math.min(batch, n - i) }, (_, k) => ({ data: payload, key: `k${(i + k) % 100}` })),
      )
    const publishBatch = n / ((performance.now() - started) / 1000)
    await sluice.createTopic('bench2', { partitions: 4 })
    started = performance.now()
    for (let i = 0; i < n; i += batch) {
      const all: Promise<unknown>[] = []
      for (let j = i; j < Math.min(n, i + batch); j++)
        all.push(sluice.publish('bench2', payload, { key: `k${j % 100}` }))
      await Promise.all(all)
    }
    const publishInFlight = n / ((performance.now() - started) / 1000)
    let got = 0
    started = performance.now()
    let done!: () => void
    const finished = new Promise<void>((resolve) => (done = resolve))
    const sub = await sluice.subscribe(
      'bench',
      's',
      () => {
        if (++got === n) done()
      },
      { ordering, concurrency: 64, prefetch: 256 },
    )
    await finished
    const consume = n / ((performance.now() - started) / 1000)
    await sub.close()
    return { publishBatch, publishInFlight, consume }
  } finally {
    await sluice.close()
  }
}

async function cleanup(redis: Redis, prefix: string): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000)
    cursor = next
    if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
}

export async function redisDriverBench(
  log: (line: string) => void,
): Promise<{ rows: Row[]; ratios: Record<string, number> }> {
  const address = new URL(url.replace(/^redis:/, 'http:'))
  const redis = new Redis({ host: address.hostname, port: Number(address.port || 6379) })
  const raw = { publish: [] as number[], consume: [] as number[] }
  const sluice = {
    publishBatch: [] as number[],
    publishInFlight: [] as number[],
    consume: [] as number[],
    keyed: [] as number[],
  }
  try {
    for (let round = 0; round < rounds; round++) {
      const stream = `sluice-bench-raw-${uuidv7()}`
      raw.publish.push(await rawPublish(redis, stream))
      raw.consume.push(await rawConsume(redis, stream))
      await redis.del(stream)
      for (const ordering of ['none', 'key'] as const) {
        const prefix = `sluice-bench-${uuidv7()}`
        const r = await sluiceRun(prefix, ordering)
        await cleanup(redis, prefix)
        if (ordering === 'none') {
          sluice.publishBatch.push(r.publishBatch)
          sluice.publishInFlight.push(r.publishInFlight)
          sluice.consume.push(r.consume)
        } else sluice.keyed.push(r.consume)
      }
      log(
        `  round ${round + 1}: raw XADD ${Math.round(raw.publish.at(-1)!)}/s, Sluice publishBatch ${Math.round(sluice.publishBatch.at(-1)!)}/s`,
      )
    }
  } finally {
    redis.disconnect()
  }
  const m = {
    rawPublish: median(raw.publish),
    rawConsume: median(raw.consume),
    publishBatch: median(sluice.publishBatch),
    publishInFlight: median(sluice.publishInFlight),
    consume: median(sluice.consume),
    keyed: median(sluice.keyed),
  }
  // Each round's Sluice figure against the raw one of the same round, then the median of those: the machine's
  // speed drifts between rounds (raw XADD has ranged 46-91k/s in one run here), less so within one.
  const perRound = (mine: number[], theirs: number[]) => mine.map((v, i) => v / theirs[i]!)
  const spread = (ratios: number[]) =>
    `${median(ratios).toFixed(2)}x raw (rounds ${Math.min(...ratios).toFixed(2)}-${Math.max(...ratios).toFixed(2)})`
  const roundRatios = {
    publishBatchVsRaw: perRound(sluice.publishBatch, raw.publish),
    publishInFlightVsRaw: perRound(sluice.publishInFlight, raw.publish),
    consumeVsRaw: perRound(sluice.consume, raw.consume),
    keyedVsRaw: perRound(sluice.keyed, raw.consume),
  }
  const ratios = {
    publishBatchVsRaw: median(roundRatios.publishBatchVsRaw),
    publishInFlightVsRaw: median(roundRatios.publishInFlightVsRaw),
    consumeVsRaw: median(roundRatios.consumeVsRaw),
    keyedVsRaw: median(roundRatios.keyedVsRaw),
  }
  const settings = `${n} x 1 KiB, 4 partitions, medians of ${rounds}`
  const rows: Row[] = [
    {
      scenario: 'redis publish',
      system: 'raw Redis Streams',
      settings: `XADD pipelined ${batch}`,
      msgsPerSec: m.rawPublish,
    },
    {
      scenario: 'redis publish',
      system: 'Sluice on Redis',
      settings: `publishBatch(${batch}), ${settings}`,
      msgsPerSec: m.publishBatch,
      note: spread(roundRatios.publishBatchVsRaw),
    },
    {
      scenario: 'redis publish',
      system: 'Sluice on Redis',
      settings: `${batch} publish() in flight`,
      msgsPerSec: m.publishInFlight,
      note: spread(roundRatios.publishInFlightVsRaw),
    },
    {
      scenario: 'redis consume + ack',
      system: 'raw Redis Streams',
      settings: `XREADGROUP COUNT ${batch} + XACK`,
      msgsPerSec: m.rawConsume,
    },
    {
      scenario: 'redis consume + ack',
      system: 'Sluice on Redis',
      settings: "ordering 'none', concurrency 64",
      msgsPerSec: m.consume,
      note: spread(roundRatios.consumeVsRaw),
    },
    {
      scenario: 'redis consume + ack',
      system: 'Sluice on Redis',
      settings: "ordering 'key', 100 keys (raw Streams cannot)",
      msgsPerSec: m.keyed,
      note: `${spread(roundRatios.keyedVsRaw)} unordered`,
    },
  ]
  return { rows, ratios }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { table } = await import('./lib/report.ts')
  const { rows } = await redisDriverBench((line) => void process.stdout.write(`${line}\n`))
  process.stdout.write(`${table(rows)}\n`)
}
