import { spawn } from 'node:child_process'
import { createInterface } from 'node:readline'
import { script } from './lib/processes.ts'
import type { Row } from './lib/report.ts'
import type { ClientJob, ClientResult, Peer } from './peers/peer.ts'
import { BullMq, NatsJetStream, RabbitMq, RedisAlwaysFsync, RedisStreams, SluiceBroker } from './peers/systems.ts'

/**
 * Sluice's broker and its peers, side by side in one run: the same payloads,
 * clients in their own processes, over loopback. Each measurement runs twice;
 * the table shows the median (of two: their mean). A publish run lasts
 * BENCH_SECONDS (default 1.5 s); an end-to-end run is about as many messages
 * as the system published in that time.
 */

const runSeconds = Number(process.env['BENCH_SECONDS'] ?? 1.5)
const backlogCount = Number(process.env['BENCH_BACKLOG'] ?? 1_000_000)
const drainSeconds = Number(process.env['BENCH_DRAIN_SECONDS'] ?? 25)

interface RunningClient {
  /** Resolves when a consumer is subscribed (it prints `ready`); rejects if it ends first. */
  readonly ready: Promise<void>
  readonly done: Promise<ClientResult>
}

function startClient(job: ClientJob): RunningClient {
  let isReady!: () => void
  let notReady!: (err: Error) => void
  const ready = new Promise<void>((resolve, reject) => {
    isReady = resolve
    notReady = reject
  })
  ready.catch(() => undefined) // a producer never prints `ready`; callers that wait on it see the failure
  const done = new Promise<ClientResult>((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script('peers/client.ts'), JSON.stringify(job)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let result: ClientResult | null = null
    let stderr = ''
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)))
    createInterface({ input: child.stdout }).on('line', (line) => {
      if (line === 'ready') isReady()
      if (line.startsWith('{')) result = JSON.parse(line) as ClientResult
    })
    const timer = setTimeout(() => child.kill('SIGKILL'), 180_000)
    child.once('exit', () => {
      clearTimeout(timer)
      const failure = new Error(`${job.sys} ${job.role} failed: ${stderr.slice(-1500)}`)
      notReady(failure)
      if (result === null) reject(failure)
      else resolve(result)
    })
  })
  return { ready, done }
}

function runClient(job: ClientJob): Promise<ClientResult> {
  return startClient(job).done
}

function sysOf(peer: Peer): string {
  if (peer instanceof SluiceBroker) return 'sluice'
  if (peer instanceof RedisStreams) return 'redis-streams'
  if (peer instanceof NatsJetStream) return 'nats'
  if (peer instanceof RabbitMq) return 'rabbitmq'
  return 'bullmq'
}

function job(peer: Peer, queue: string, more: Partial<ClientJob> & Pick<ClientJob, 'role' | 'count'>): ClientJob {
  return { sys: sysOf(peer), connection: peer.connection, queue, payloadBytes: 1024, window: 256, ...more }
}

const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length

/** Publishes with confirmation for BENCH_SECONDS; returns msgs/s (median of two runs). */
async function publishRate(peer: Peer, payloadBytes: number): Promise<number> {
  const queue = `bench-pub-${payloadBytes}`
  const rates: number[] = []
  for (let run = 0; run < 2; run++) {
    await peer.setup(queue, 1)
    const result = await runClient(
      job(peer, queue, { role: 'produce', count: 50_000_000, seconds: runSeconds, warmupSeconds: 0.5, payloadBytes }),
    )
    rates.push(result.msgsPerSec)
  }
  await peer.teardown(queue)
  return mean(rates)
}

/**
 * Producer and `subscribers` consumers in separate processes: msgs/s from the producer's first publish to
 * the last ack of the slowest subscriber. The consumers are subscribed before the producer starts, and
 * process start-up is not counted (clocks are wall-clock times from each process, on one machine).
 */
async function endToEnd(
  peer: Peer,
  payloadBytes: number,
  count: number,
  subscribers: number,
  consumer: Partial<ClientJob> = {},
  producer: Partial<ClientJob> = {},
): Promise<{ msgsPerSec: number; results: ClientResult[] }> {
  const queue = `bench-e2e-${payloadBytes}-${subscribers}`
  const rates: number[] = []
  let results: ClientResult[] = []
  for (let run = 0; run < 2; run++) {
    await peer.setup(queue, subscribers)
    const consumers = Array.from({ length: subscribers }, (_, s) =>
      startClient(
        job(peer, queue, { role: 'consume', count, payloadBytes, window: 64, subscription: `s${s}`, ...consumer }),
      ),
    )
    const consumed = Promise.all(consumers.map((c) => c.done))
    consumed.catch(() => undefined) // awaited below; a consumer failing while the producer runs is reported there
    await Promise.all(consumers.map((c) => c.ready))
    const produced = await runClient(job(peer, queue, { role: 'produce', count, payloadBytes, ...producer }))
    results = await consumed
    const lastAck = Math.max(...results.map((r) => r.endedAt))
    rates.push(count / ((lastAck - produced.startedAt) / 1000))
  }
  await peer.teardown(queue)
  return { msgsPerSec: mean(rates), results }
}

async function latency(peer: Peer, rate: number): Promise<ClientResult> {
  const queue = `bench-lat-${rate}`
  const count = Math.round(rate * Math.max(2, runSeconds * 2))
  await peer.setup(queue, 1)
  const consumer = startClient(job(peer, queue, { role: 'consume', count, window: 64, latency: true }))
  consumer.done.catch(() => undefined) // awaited below
  await consumer.ready // attached before the first message
  await runClient(job(peer, queue, { role: 'produce', count, rate, window: 64 }))
  const result = await consumer.done
  await peer.teardown(queue)
  return result
}

/**
 * Fills a backlog first (not timed), then measures how fast one consumer process drains it. Filling and
 * draining each stop after BENCH_DRAIN_SECONDS, so that the slowest peers keep the whole run bounded: the
 * row's note says how much was filled and drained.
 */
async function drain(peer: Peer): Promise<{ msgsPerSec: number; filled: number; drained: number }> {
  const queue = 'bench-backlog'
  await peer.setup(queue, 1)
  // A wide window gets every system there sooner.
  const fill = await runClient(
    job(peer, queue, { role: 'produce', count: backlogCount, window: 2048, seconds: drainSeconds }),
  )
  const result = await runClient(
    job(peer, queue, { role: 'consume', count: fill.count, window: 64, seconds: drainSeconds }),
  )
  await peer.teardown(queue)
  return { msgsPerSec: result.msgsPerSec, filled: fill.count, drained: result.count }
}

export interface CompareResult {
  readonly rows: Row[]
  readonly skipped: { readonly system: string; readonly why: string }[]
  readonly systems: { readonly name: string; readonly durability: string; readonly keyOrdering: string }[]
}

export async function compare(log: (line: string) => void, wanted: ReadonlySet<string> | null): Promise<CompareResult> {
  const rows: Row[] = []
  const skipped: { system: string; why: string }[] = []
  const sluiceFsync = new SluiceBroker('fsync')
  const sluiceInterval = new SluiceBroker('interval')
  for (const s of [sluiceFsync, sluiceInterval]) await s.start()
  let redisAlways: RedisAlwaysFsync | null = null
  try {
    redisAlways = await RedisAlwaysFsync.start()
  } catch (err) {
    skipped.push({ system: 'redis-streams aof always', why: (err as Error).message })
  }
  const candidates: Peer[] = [
    sluiceFsync,
    sluiceInterval,
    new RedisStreams('redis-streams', 6379, 'none here: the machine runs Redis without AOF or snapshots'),
    ...(redisAlways === null ? [] : [redisAlways]),
    new NatsJetStream(),
    new RabbitMq('quorum'),
    new RabbitMq('classic'),
    new BullMq(),
  ]
  const peers: Peer[] = []
  for (const peer of candidates) {
    const why = await peer.unavailable()
    if (why !== null) {
      skipped.push({ system: peer.name, why })
      log(`  skipped ${peer.name}: ${why}`)
    } else peers.push(peer)
  }
  const add = (scenario: string, peer: Peer, settings: string, msgsPerSec: number, extra: Partial<Row> = {}): void => {
    rows.push({ scenario, system: peer.name, settings, msgsPerSec, ...extra })
    log(`  ${scenario} | ${peer.name} | ${settings}: ${Math.round(msgsPerSec).toLocaleString('en-US')} msgs/s`)
  }
  // Minutes spent per scenario, to keep the whole run within its budget.
  const spent = new Map<string, number>()
  const attempt = async (peer: Peer, scenario: string, work: () => Promise<void>): Promise<void> => {
    if (wanted !== null && !wanted.has(scenario)) return
    const began = performance.now()
    try {
      await work()
    } catch (err) {
      log(`  ${scenario} | ${peer.name}: not measured: ${(err as Error).message.split('\n')[0]}`)
      rows.push({
        scenario,
        system: peer.name,
        settings: 'not measured',
        msgsPerSec: 0,
        note: (err as Error).message.split('\n')[0],
      })
    }
    spent.set(scenario, (spent.get(scenario) ?? 0) + (performance.now() - began) / 60_000)
  }

  const publishRates = new Map<string, number>()
  try {
    for (const peer of peers) {
      for (const bytes of [1024, 100, 16 * 1024]) {
        await attempt(peer, 'publish', async () => {
          const rate = await publishRate(peer, bytes)
          publishRates.set(`${peer.name} ${bytes}`, rate)
          add('publish', peer, `${bytes} B, 256 in flight, confirmed`, rate, { mbPerSec: (rate * bytes) / 1e6 })
        })
      }
    }
    for (const peer of peers) {
      for (const bytes of [1024, 100, 16 * 1024]) {
        await attempt(peer, 'end-to-end', async () => {
          // Sized like the publish runs (about BENCH_SECONDS of publishing), or fixed without them.
          const published = publishRates.get(`${peer.name} ${bytes}`)
          const count =
            published === undefined
              ? bytes > 4096
                ? 10_000
                : 30_000
              : Math.round(Math.min(300_000, Math.max(5000, published * runSeconds)))
          const { msgsPerSec } = await endToEnd(peer, bytes, count, 1)
          add('end-to-end', peer, `${bytes} B, at-least-once, ack after handler, 64 handlers`, msgsPerSec, {
            mbPerSec: (msgsPerSec * bytes) / 1e6,
            note: `${count.toLocaleString('en-US')} messages, first publish to last ack`,
          })
        })
      }
    }
    for (const peer of peers) {
      for (const rate of [1000, 5000]) {
        await attempt(peer, 'latency', async () => {
          const r = await latency(peer, rate)
          add('latency', peer, `steady ${rate.toLocaleString('en-US')} msgs/s, publish to handler`, rate, {
            p50Ms: r.p50Ms,
            p99Ms: r.p99Ms,
            note: `p99.9 ${r.p999Ms} ms`,
          })
        })
      }
    }
    for (const peer of peers) {
      await attempt(peer, 'fan-out', async () => {
        const { msgsPerSec } = await endToEnd(peer, 1024, 20_000, 4)
        add('fan-out', peer, '4 subscriptions, each gets all 20,000', msgsPerSec, {
          note: 'messages per second per subscription',
        })
      })
    }
    for (const peer of peers) {
      await attempt(peer, 'key-ordered', async () => {
        const { msgsPerSec, results } = await endToEnd(
          peer,
          1024,
          20_000,
          1,
          { window: 64, handlerMs: 1, checkOrder: true },
          { keys: 1000 },
        )
        add('key-ordered', peer, '1,000 keys, 1 ms handler, 64 handlers', msgsPerSec, {
          note: `order violations ${results[0]?.orderViolations ?? '?'}; ${peer.keyOrdering}`,
        })
      })
    }
    for (const peer of peers) {
      await attempt(peer, 'drain', async () => {
        const { msgsPerSec, filled, drained } = await drain(peer)
        const n = (x: number): string => x.toLocaleString('en-US')
        add('drain', peer, `a backlog of ${n(backlogCount)}, one consumer process`, msgsPerSec, {
          note:
            filled === backlogCount && drained === filled
              ? `${n(drained)} drained`
              : `${n(filled)} filled, ${n(drained)} drained within the ${drainSeconds} s caps`,
        })
      })
    }
    log(`  minutes per scenario: ${[...spent].map(([name, m]) => `${name} ${m.toFixed(1)}`).join(', ')}`)
  } finally {
    for (const s of [sluiceFsync, sluiceInterval]) await s.stop()
    await redisAlways?.stop()
  }
  return {
    rows,
    skipped,
    systems: peers.map((p) => ({ name: p.name, durability: p.durability, keyOrdering: p.keyOrdering })),
  }
}
