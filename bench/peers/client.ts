// A bench client process: `client.ts '<ClientJob as JSON>'`. Produces or consumes for one system and prints
// one JSON line (ClientResult). Payloads carry their send time (hrtime ns, bytes 0-7), their key index
// (bytes 8-11) and their sequence within the key (bytes 12-15).
import { setTimeout as sleep } from 'node:timers/promises'
import { latencyOf, newHistogram } from '../lib/measure.ts'
import type { Client, ClientJob, ClientResult } from './peer.ts'

const job = JSON.parse(process.argv[2]!) as ClientJob
// Only this system's client library is loaded (start-up is paid for every client process the bench runs).
const { client: connect } = (await import(`./clients/${job.sys}.ts`)) as {
  client: (connection: Record<string, unknown>) => Promise<Client>
}
const client = await connect(job.connection)
const wallClock = (): number => performance.timeOrigin + performance.now()
let start = process.hrtime.bigint()
let startedAt = wallClock()
const result: Record<string, number> = {}
/** Until when this client works (`job.seconds` from the start of its work). */
const stopAt = (): number => Number(start) / 1e6 + (job.seconds ?? Infinity) * 1000
let done = 0

if (job.role === 'produce') {
  const template = Buffer.alloc(job.payloadBytes, 7)
  const perKey = new Map<number, number>()
  const make = (i: number): { payload: Buffer; key: string | null } => {
    done++
    const payload = Buffer.from(template)
    payload.writeBigInt64BE(process.hrtime.bigint(), 0)
    if (job.keys === undefined) return { payload, key: null }
    // Runs of 4 per key: a key's messages arrive close together, so running them at once is possible (and counted).
    const key = Math.floor(i / 4) % job.keys
    const seq = perKey.get(key) ?? 0
    perKey.set(key, seq + 1)
    payload.writeUInt32BE(key, 8)
    payload.writeUInt32BE(seq, 12)
    return { payload, key: `k${key}` }
  }
  let paced = 0
  let warming = (job.warmupSeconds ?? 0) > 0
  const pace = async (): Promise<boolean> => {
    if (warming && Number(process.hrtime.bigint() - start) / 1e9 >= job.warmupSeconds!) {
      // Warm: the measured run starts now (publishes still unconfirmed count in it: at most a window's worth).
      warming = false
      start = process.hrtime.bigint()
      startedAt = wallClock()
      done = 0
    }
    if (Number(process.hrtime.bigint()) / 1e6 > stopAt()) return false
    if (job.rate === undefined) return true
    const due = Number(start) + (paced++ * 1e9) / job.rate
    const wait = (due - Number(process.hrtime.bigint())) / 1e6
    if (wait > 1) await sleep(wait)
    return true
  }
  await client.produce(job, make, pace)
} else {
  const latency = newHistogram()
  const lastSeq = new Map<number, number>()
  const running = new Set<number>()
  let violations = 0
  let timeUp!: () => void
  const capped = new Promise<void>((resolve) => (timeUp = resolve))
  const ready = (): void => {
    // The consumer's clock starts once it is subscribed: the bench starts producers only after this line.
    start = process.hrtime.bigint()
    startedAt = wallClock()
    if (job.seconds !== undefined) setTimeout(timeUp, job.seconds * 1000).unref()
    process.stdout.write('ready\n')
  }
  const consumed = client.consume(
    job,
    async (payload) => {
      if (job.latency === true) latency.record(Math.max(1, Number(process.hrtime.bigint() - payload.readBigInt64BE(0))))
      // Key order: a message of a key must not start before the one before it, nor while another of its key runs.
      const key = job.checkOrder === true ? payload.readUInt32BE(8) : -1
      if (job.checkOrder === true) {
        const seq = payload.readUInt32BE(12)
        if (seq < (lastSeq.get(key) ?? -1) || running.has(key)) violations++
        lastSeq.set(key, Math.max(seq, lastSeq.get(key) ?? -1))
        running.add(key)
      }
      if (job.handlerMs !== undefined && job.handlerMs > 0) await sleep(job.handlerMs)
      running.delete(key)
      done++
    },
    ready,
  )
  // With `job.seconds`, what was handled when the time is up is the result (the rest stays in the queue).
  await Promise.race([consumed, capped])
  if (job.latency === true) {
    const l = latencyOf(latency)
    Object.assign(result, { p50Ms: l.p50Ms, p99Ms: l.p99Ms, p999Ms: l.p999Ms })
  }
  if (job.checkOrder === true) result['orderViolations'] = violations
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9
const count = Math.min(done, job.count)
const out: ClientResult = {
  count,
  seconds,
  msgsPerSec: count / seconds,
  startedAt,
  endedAt: wallClock(),
  ...result,
}
process.stdout.write(`${JSON.stringify(out)}\n`)
await Promise.race([client.close(), sleep(2000)])
process.exit(0)
