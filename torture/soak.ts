/**
 * Soak: a broker in its own process under steady mixed load for
 * SLUICE_SOAK_MS (default 10 minutes), through the real client.
 *
 * Load: producers publishing at a steady rate to an fsync topic with keys;
 * a subscription whose consumers ack (`ackers`), one whose consumers nack,
 * fail for good (dead-lettered) or sleep past their lease (`flaky`), the
 * dead-letter topic read by `audit`; clients opening, working and closing
 * every few seconds, and an `ackers` consumer closed and replaced.
 *
 * Checks: every acknowledged publish reaches `ackers` at least once, and
 * `flaky` acknowledges or dead-letters it (lost must be 0); the broker's
 * heap, RSS and open file descriptors do not keep growing after warm-up;
 * retention keeps the data directory under a bound; every connection is
 * gone once every client has closed. Exits 1 when a check fails.
 */
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ErrorCode, open, SluiceError, type Message, type Sluice, type Subscription } from '../src/index.ts'
import { reportFigures, scale } from '../test/fault/report.ts'
import { fixture, runChild, type Child } from '../test/helpers/child.ts'
import { freePort } from '../test/helpers/ports.ts'
import { withTimeout } from '../test/helpers/with-timeout.ts'
import { guardBroker, loadPhase, mib, runWorkload, stopBroker } from './lib.ts'

const durationMs = scale('SLUICE_SOAK_MS', 600_000)
const sampleEveryMs = 5000
/** The first 20% of the run (at least 30 s once the run is a minute or more) is not used for slopes. */
const warmupMs = Math.round(durationMs >= 60_000 ? Math.max(30_000, 0.2 * durationMs) : 0.2 * durationMs)
/**
 * Leaks are judged only over at least this much run after warm-up. Measured
 * on this workload, the broker's memory outside the V8 heap climbs for its
 * first 5 or 6 minutes (74 -> 128 MiB) and then stays flat for good (25
 * minutes run); over a shorter window that climb is indistinguishable from a
 * leak, and the slopes are only reported.
 */
const minJudgedMs = 5 * 60_000

const topic = 'soak.orders'
const dlqTopic = `${topic}.dlq`
const partitions = 4
const segmentBytes = 1024 * 1024
const retentionMaxBytes = 16 * 1024 * 1024
const dlqSegmentBytes = 256 * 1024
const dlqRetentionMaxBytes = 2 * 1024 * 1024
/**
 * Size retention keeps a partition under maxBytes plus its active segment.
 * The subscription state journal grows to 64 MiB before it is folded into a
 * snapshot (`checkpointBytes` in src/engine/subscriptions/state-journal.ts);
 * 32 MiB more covers the snapshot and the new journal during a checkpoint.
 */
const diskBoundBytes =
  partitions * (retentionMaxBytes + segmentBytes + dlqRetentionMaxBytes + dlqSegmentBytes) + (64 << 20) + (32 << 20)

const producerCount = 4
const ratePerProducer = 500 // messages per second each: 2,000/s in all
const maxInFlightPerProducer = 1000
const keys = 256
const padding = 'x'.repeat(120)
const ackersConsumers = 3
const flakyConsumers = 2
const churnEveryMs = 3000
const replaceEveryMs = 10_000
/** The flaky subscription's leases end this soon after they are granted (no extension past maxLeaseMs). */
const flakyLeaseMs = 500
const sleepPastLeaseMs = 1500
const drainTimeoutMs = 120_000
/** Past this the run is hung: give up and fail. */
const hardLimitMs = durationMs + drainTimeoutMs + 120_000

/**
 * Leak thresholds. RSS is the V8 heap's reserved size (heapTotal) plus the
 * memory outside it (Buffers, malloc, code). heapTotal swings by 50 MiB as V8
 * grows the heap and gives it back after full GCs, so a slope over raw RSS
 * mostly tells where that swing was at either end (measured: -8 to +12
 * MiB/min over 4-minute halves of a healthy run). RSS is therefore judged as
 * its two smooth parts: live JS objects, as the heap's floor (the lowest
 * heapUsed of each 30 s, roughly what survives a GC), and RSS - heapTotal.
 *
 * A part leaks when it grows faster than 1.5 MiB/min over the warm run AND
 * still faster than 1 MiB/min over its last half: memory that grew and then
 * levelled off (allocator arenas, caches) is not a leak. 1.5 MiB/min is 13
 * bytes per message at 2,000 messages/s, so any per-message leak trips it.
 * Replaying the samples of a healthy 25-minute run in 8-minute windows with
 * a synthetic leak added: 0 of 31 windows flagged with no leak, all flagged
 * at 3 MiB/min (RSS - heapTotal) and 6 MiB/min (heap floor, which wanders by
 * 20 MiB with the backlog). The 1 MiB/min of the brief flagged 2 healthy
 * windows in 31 (the heap floor's own wander), too many for a gate.
 */
const memorySlopeLimit = 1.5 * 1024 * 1024
const memoryLateSlopeLimit = 1024 * 1024
/** File descriptors: segments roll about every 10 s per partition and are deleted as consumed, so the count stays flat; 2 a minute sustained is a leak of one per rolled segment or per churned connection. */
const fdSlopeLimit = 2

/** Message states, one byte per message per producer. */
const Flag = { Acknowledged: 1, Ackers: 2, FlakyAcked: 4, DeadLettered: 8, DeadLetteredFromAckers: 16 } as const

interface Payload {
  readonly p: number
  readonly n: number
  readonly pad: string
}

function isPayload(data: unknown): data is Payload {
  return typeof data === 'object' && data !== null && typeof (data as Payload).p === 'number'
}

/** Per producer and counter: what happened to each message. Compact, as a 10-minute run numbers a million. */
class Ledger {
  private readonly flags: Uint8Array[] = []
  private readonly ackersDeliveries: Uint8Array[] = []
  private readonly sent: number[] = []
  published = 0
  publishFailures = 0
  ackersDeliveryCount = 0
  duplicates = 0
  /** Deliveries of messages this ledger did not number. */
  strays = 0

  producer(): number {
    this.flags.push(new Uint8Array(4096))
    this.ackersDeliveries.push(new Uint8Array(4096))
    this.sent.push(0)
    return this.flags.length - 1
  }

  /** The next counter of producer `p`. */
  next(p: number): number {
    const n = this.sent[p]!
    this.sent[p] = n + 1
    this.published++
    const flags = this.flags[p]!
    if (n >= flags.length) {
      const grown = new Uint8Array(flags.length * 2)
      grown.set(flags)
      this.flags[p] = grown
      const deliveries = new Uint8Array(grown.length)
      deliveries.set(this.ackersDeliveries[p]!)
      this.ackersDeliveries[p] = deliveries
    }
    return n
  }

  private known(p: number, n: number): boolean {
    return Number.isInteger(p) && p >= 0 && p < this.flags.length && Number.isInteger(n) && n >= 0 && n < this.sent[p]!
  }

  mark(data: unknown, flag: number): void {
    if (!isPayload(data) || !this.known(data.p, data.n)) {
      this.strays++
      return
    }
    this.flags[data.p]![data.n]! |= flag
  }

  deliveredToAckers(data: unknown): void {
    this.ackersDeliveryCount++
    if (!isPayload(data) || !this.known(data.p, data.n)) {
      this.strays++
      return
    }
    const counts = this.ackersDeliveries[data.p]!
    if (counts[data.n]! > 0) this.duplicates++
    counts[data.n] = Math.min(255, counts[data.n]! + 1)
    this.flags[data.p]![data.n]! |= Flag.Ackers
  }

  figures(): {
    acknowledged: number
    delivered: number
    lostAckers: number
    lostFlaky: number
    deadLettered: number
    deadLetteredFromAckers: number
  } {
    let acknowledged = 0
    let delivered = 0
    let lostAckers = 0
    let lostFlaky = 0
    let deadLettered = 0
    let deadLetteredFromAckers = 0
    for (let p = 0; p < this.flags.length; p++) {
      const flags = this.flags[p]!
      for (let n = 0; n < this.sent[p]!; n++) {
        const f = flags[n]!
        if ((f & Flag.DeadLettered) !== 0) deadLettered++
        if ((f & Flag.DeadLetteredFromAckers) !== 0) deadLetteredFromAckers++
        if ((f & Flag.Acknowledged) === 0) continue
        acknowledged++
        if ((f & Flag.Ackers) !== 0) delivered++
        else lostAckers++
        if ((f & (Flag.FlakyAcked | Flag.DeadLettered)) === 0) lostFlaky++
      }
    }
    return { acknowledged, delivered, lostAckers, lostFlaky, deadLettered, deadLetteredFromAckers }
  }
}

interface Sample {
  readonly atMs: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  readonly rss: number
  readonly fds: number
  readonly diskBytes: number
  readonly connections: number
}

/** Least-squares slope of y over x. */
function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length
  if (n < 2) return 0
  let sx = 0
  let sy = 0
  for (const [x, y] of points) {
    sx += x
    sy += y
  }
  const mx = sx / n
  const my = sy / n
  let num = 0
  let den = 0
  for (const [x, y] of points) {
    num += (x - mx) * (y - my)
    den += (x - mx) ** 2
  }
  return den === 0 ? 0 : num / den
}

/** Per minute, from samples at `atMs`. */
function slopePerMin(samples: readonly Sample[], pick: (s: Sample) => number): number {
  return slope(samples.map((s) => [s.atMs / 60_000, pick(s)]))
}

/** Memory outside the V8 heap. */
function outsideHeap(s: Sample): number {
  return s.rss - s.heapTotal
}

/** The lowest heap sample of each `windowMs`: what survives a GC, roughly. */
function heapFloor(samples: readonly Sample[], windowMs = 30_000): Sample[] {
  const floors = new Map<number, Sample>()
  for (const s of samples) {
    const bucket = Math.floor(s.atMs / windowMs)
    const low = floors.get(bucket)
    if (low === undefined || s.heapUsed < low.heapUsed) floors.set(bucket, s)
  }
  return [...floors.values()]
}

/** Whole-run slope and last-half slope of one figure: a leak keeps growing in both. */
function trend(
  samples: readonly Sample[],
  pick: (s: Sample) => number,
  limit: number,
  lateLimit: number,
): { slope: number; lateSlope: number; leaks: boolean } {
  const all = slopePerMin(samples, pick)
  const late = slopePerMin(samples.slice(Math.floor(samples.length / 2)), pick)
  return { slope: all, lateSlope: late, leaks: all > limit && late > lateLimit }
}

async function countFds(pid: number): Promise<number> {
  return (await readdir(`/proc/${pid}/fd`)).length
}

/** Bytes of the files under `dir`; files deleted while counting are skipped. */
async function diskBytes(dir: string): Promise<number> {
  let total = 0
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true, recursive: true })
  } catch {
    return 0
  }
  for (const entry of entries) {
    if (!entry.isFile()) continue
    try {
      total += (await stat(join(entry.parentPath, entry.name))).size
    } catch {
      // retention deleted it meanwhile
    }
  }
  return total
}

const ledger = new Ledger()
const clientErrors = new Map<string, number>()
const clients = new Set<Sluice>()
let connectionsOpened = 0
let leaseExpiries = 0
let flakyRedeliveries = 0
let nacks = 0
const { stop, stopped, pause } = loadPhase()

function describe(err: unknown): string {
  return err instanceof SluiceError ? err.code : err instanceof Error ? err.message.slice(0, 80) : String(err)
}

function noteError(err: unknown): void {
  const code = describe(err)
  clientErrors.set(code, (clientErrors.get(code) ?? 0) + 1)
}

async function connect(url: string): Promise<Sluice> {
  const sluice = await open({ url, onError: noteError })
  connectionsOpened++
  clients.add(sluice)
  return sluice
}

async function disconnect(sluice: Sluice): Promise<void> {
  try {
    await withTimeout(sluice.close(), 45_000, 'a client to close')
  } finally {
    clients.delete(sluice)
  }
}

function subscribeAckers(sluice: Sluice, concurrency: number): Promise<Subscription> {
  return sluice.subscribe(topic, 'ackers', (msg) => ledger.deliveredToAckers(msg.data), {
    concurrency,
    maxAttempts: 10,
  })
}

/** Nacks some messages (explicitly or by throwing), fails some for good, sleeps past the lease on some. */
async function flakyHandler(msg: Message): Promise<void> {
  const data = msg.data
  if (!isPayload(data)) {
    ledger.mark(data, 0)
    return
  }
  if (msg.attempt > 1) flakyRedeliveries++
  const { n } = data
  if (n % 500 === 7) throw new Error('poison: fails on every delivery')
  if (msg.attempt === 1 && n % 40 === 3) {
    nacks++
    await msg.nack({ delayMs: 50, reason: 'not now' })
    return
  }
  if (msg.attempt === 1 && n % 40 === 13) {
    nacks++
    throw new Error('transient failure')
  }
  if (msg.attempt === 1 && n % 1000 === 11) await sleep(sleepPastLeaseMs)
  try {
    await msg.ack()
    ledger.mark(data, Flag.FlakyAcked)
  } catch (err) {
    if (err instanceof SluiceError && err.code === ErrorCode.LeaseLost) leaseExpiries++
    else throw err
  }
}

function subscribeFlaky(sluice: Sluice): Promise<Subscription> {
  return sluice.subscribe(topic, 'flaky', flakyHandler, {
    concurrency: 64,
    ackTimeoutMs: flakyLeaseMs,
    maxLeaseMs: flakyLeaseMs,
    maxAttempts: 3,
    backoff: { initialMs: 50, multiplier: 2, maxMs: 500, jitter: 0.2 },
    deadLetter: dlqTopic,
  })
}

/** Publishes at `ratePerSecond` until stopped, at most `maxInFlight` unanswered. */
async function produce(sluice: Sluice, ratePerSecond: number): Promise<void> {
  const p = ledger.producer()
  const inFlight = new Set<Promise<void>>()
  const started = Date.now()
  let sent = 0
  while (!stopped()) {
    const due = Math.floor(((Date.now() - started) / 1000) * ratePerSecond)
    while (sent < due && inFlight.size < maxInFlightPerProducer) {
      const n = ledger.next(p)
      sent++
      const publishing = sluice.publish(topic, { p, n, pad: padding }, { key: `k${n % keys}` }).then(
        () => ledger.mark({ p, n, pad: '' }, Flag.Acknowledged),
        (err: unknown) => {
          ledger.publishFailures++
          noteError(err)
        },
      )
      inFlight.add(publishing)
      void publishing.finally(() => inFlight.delete(publishing))
    }
    await sleep(10)
  }
  await Promise.all(inFlight)
}

/** Every few seconds: a client opens, publishes a batch, consumes for a moment, and closes. */
async function churn(url: string): Promise<void> {
  while (!stopped()) {
    await pause(churnEveryMs * (0.5 + Math.random()))
    if (stopped()) break
    let sluice: Sluice | null = null
    try {
      sluice = await connect(url)
      const p = ledger.producer()
      const messages = Array.from({ length: 20 + Math.floor(Math.random() * 80) }, () => {
        const n = ledger.next(p)
        return { data: { p, n, pad: padding }, key: `k${n % keys}` }
      })
      await sluice.publishBatch(topic, messages)
      for (const m of messages) ledger.mark(m.data, Flag.Acknowledged)
      await subscribeAckers(sluice, 4)
      await pause(500 + Math.random() * 1000)
    } catch (err) {
      noteError(err)
    } finally {
      if (sluice !== null) await disconnect(sluice).catch(noteError)
    }
  }
}

/** Every few seconds, the oldest `ackers` consumer is closed and a new client takes its place. */
async function replaceAckers(url: string, consumers: Sluice[]): Promise<void> {
  while (!stopped()) {
    await pause(replaceEveryMs)
    if (stopped()) break
    const oldest = consumers.shift()!
    try {
      await disconnect(oldest)
      const fresh = await connect(url)
      await subscribeAckers(fresh, 32)
      consumers.push(fresh)
    } catch (err) {
      noteError(err)
    }
  }
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-soak-'))
  let broker: Child | null = null
  const release = guardBroker('soak', hardLimitMs, () => broker)
  try {
    broker = runChild(null, fixture('broker.ts'), [dir, String(await freePort())])
    let brokerExit: number | string | null = null
    void broker.exited.then((how) => (brokerExit = how))
    // Read through a function: a callback sets it, which narrowing does not see.
    const alive = (): boolean => brokerExit === null
    const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
    const url = `sluice://127.0.0.1:${port}`
    process.stdout.write(
      `soak: ${durationMs / 1000} s against broker pid ${broker.pid} (${dir}), warm-up ${warmupMs / 1000} s\n`,
    )

    const admin = await connect(url)
    await admin.createTopic(topic, {
      partitions,
      durability: 'fsync',
      segmentBytes,
      retention: { maxBytes: retentionMaxBytes },
    })
    // Created ahead so that it has retention; made on first use it would keep every dead letter.
    await admin.createTopic(dlqTopic, {
      partitions,
      durability: 'fsync',
      segmentBytes: dlqSegmentBytes,
      retention: { maxBytes: dlqRetentionMaxBytes },
    })

    const auditor = await connect(url)
    await auditor.subscribe(dlqTopic, 'audit', (msg) =>
      ledger.mark(
        msg.data,
        msg.headers['sluice-subscription'] === 'ackers' ? Flag.DeadLetteredFromAckers : Flag.DeadLettered,
      ),
    )
    const ackers: Sluice[] = []
    for (let i = 0; i < ackersConsumers; i++) {
      const sluice = await connect(url)
      await subscribeAckers(sluice, 32)
      ackers.push(sluice)
    }
    const flaky: Sluice[] = []
    for (let i = 0; i < flakyConsumers; i++) {
      const sluice = await connect(url)
      await subscribeFlaky(sluice)
      flaky.push(sluice)
    }

    const samples: Sample[] = []
    const started = Date.now()
    const samplingErrors: string[] = []
    const sampler = (async () => {
      while (alive()) {
        const at = Date.now()
        try {
          const memory = (await withTimeout(broker.ask({ memory: true }), 5000, 'the broker to report memory')) as {
            heapUsed: number
            heapTotal: number
            external: number
            rss: number
            connections: number
          }
          samples.push({
            atMs: at - started,
            heapUsed: memory.heapUsed,
            heapTotal: memory.heapTotal,
            external: memory.external,
            rss: memory.rss,
            fds: await countFds(broker.pid),
            diskBytes: await diskBytes(dir),
            connections: memory.connections,
          })
        } catch (err) {
          if (alive()) samplingErrors.push(describe(err))
          return
        }
        if (stopped() && samples.length > 0 && samples.at(-1)!.atMs >= durationMs) return
        await sleep(Math.max(0, sampleEveryMs - (Date.now() - at)))
      }
    })()

    const producers: Sluice[] = []
    for (let i = 0; i < producerCount; i++) producers.push(await connect(url))
    const work = [
      ...producers.map((sluice) => produce(sluice, ratePerProducer)),
      churn(url),
      replaceAckers(url, ackers),
    ]
    const progress = setInterval(() => {
      const last = samples.at(-1)
      process.stdout.write(
        `soak: ${Math.round((Date.now() - started) / 1000)} s, published ${ledger.published}, ` +
          `delivered ${ledger.ackersDeliveryCount}, connections opened ${connectionsOpened}` +
          (last === undefined ? '\n' : `, broker heap ${mib(last.heapUsed)} rss ${mib(last.rss)} fds ${last.fds}\n`),
      )
    }, 30_000)
    while (Date.now() - started < durationMs && alive()) await sleep(250)
    stop.abort()
    clearInterval(progress)
    await Promise.all(work)
    const loadMs = Date.now() - started
    await sampler

    // Everything published gets its chance: wait for ackers and flaky (or the dead-letter topic) to have it.
    const drainStarted = Date.now()
    while (alive() && Date.now() - drainStarted < drainTimeoutMs) {
      const f = ledger.figures()
      if (f.lostAckers === 0 && f.lostFlaky === 0) break
      await sleep(500)
    }
    const drainMs = Date.now() - drainStarted
    let redeliveries: number | null = null
    let expiredUnread = 0
    try {
      const stats = await admin.stats(topic)
      redeliveries = stats.subscriptions.reduce((sum, s) => sum + s.redeliveries, 0)
      expiredUnread = stats.subscriptions.reduce((sum, s) => sum + s.expiredUnread, 0)
    } catch (err) {
      noteError(err)
    }

    for (const sluice of [...clients]) await disconnect(sluice).catch(noteError)
    let connectionsLeft = -1
    const closedAt = Date.now()
    while (alive() && Date.now() - closedAt < 10_000) {
      connectionsLeft = ((await broker.ask({ memory: true })) as { connections: number }).connections
      if (connectionsLeft === 0) break
      await sleep(200)
    }
    const fdsAfterClose = alive() ? await countFds(broker.pid) : -1

    const f = ledger.figures()
    const lost = f.lostAckers + f.lostFlaky
    const warm = samples.filter((s) => s.atMs >= warmupMs && s.atMs <= durationMs)
    const judged = warm.length > 1 && warm.at(-1)!.atMs - warm[0]!.atMs >= minJudgedMs
    const heap = trend(heapFloor(warm), (s) => s.heapUsed, memorySlopeLimit, memoryLateSlopeLimit)
    const outside = trend(warm, outsideHeap, memorySlopeLimit, memoryLateSlopeLimit)
    // Reported for the record; not a verdict (see memorySlopeLimit).
    const rss = trend(warm, (s) => s.rss, memorySlopeLimit, memoryLateSlopeLimit)
    const fds = trend(warm, (s) => s.fds, fdSlopeLimit, fdSlopeLimit)
    const first = warm[0] ?? samples[0]
    const last = samples.filter((s) => s.atMs <= durationMs).at(-1) ?? samples.at(-1)
    const diskMax = Math.max(0, ...samples.map((s) => s.diskBytes))
    const failures: string[] = []
    if (!alive()) failures.push(`the broker exited (${String(brokerExit)})`)
    if (samplingErrors.length > 0) failures.push(`sampling the broker failed: ${samplingErrors.join(', ')}`)
    if (lost > 0) failures.push(`${lost} acknowledged messages lost (ackers ${f.lostAckers}, flaky ${f.lostFlaky})`)
    if (ledger.strays > 0) failures.push(`${ledger.strays} deliveries of messages never published`)
    if (judged && outside.leaks)
      failures.push(
        `memory outside the V8 heap (RSS - heapTotal) keeps growing: ${mib(outside.slope)}/min, ${mib(outside.lateSlope)}/min late`,
      )
    if (judged && heap.leaks)
      failures.push(`heap floor keeps growing: ${mib(heap.slope)}/min, ${mib(heap.lateSlope)}/min late`)
    if (judged && fds.leaks && last !== undefined && first !== undefined && last.fds > first.fds + 10)
      failures.push(`open files keep growing: ${fds.slope.toFixed(1)}/min (${first.fds} -> ${last.fds})`)
    if (diskMax > diskBoundBytes) failures.push(`data directory reached ${mib(diskMax)}, bound ${mib(diskBoundBytes)}`)
    if (connectionsLeft !== 0)
      failures.push(`${connectionsLeft} connections still open on the broker after every client closed`)

    const figures = {
      durationMs: loadMs,
      published: ledger.published,
      acknowledged: f.acknowledged,
      publishFailures: ledger.publishFailures,
      publishRatePerSec: Math.round(ledger.published / (loadMs / 1000)),
      delivered: f.delivered,
      deliveries: ledger.ackersDeliveryCount,
      lost,
      lostAckers: f.lostAckers,
      lostFlaky: f.lostFlaky,
      duplicates: ledger.duplicates,
      strays: ledger.strays,
      nacks,
      deadLettered: f.deadLettered,
      deadLetteredFromAckers: f.deadLetteredFromAckers,
      leaseExpiries,
      flakyRedeliveries,
      redeliveries,
      expiredUnread,
      drainMs,
      connectionsOpened,
      connectionsLeft,
      clientErrors: Object.fromEntries(clientErrors),
      warmupMs,
      leakJudged: judged,
      heapSlopeBytesPerMin: Math.round(heap.slope),
      heapLateSlopeBytesPerMin: Math.round(heap.lateSlope),
      rssSlopeBytesPerMin: Math.round(rss.slope),
      rssLateSlopeBytesPerMin: Math.round(rss.lateSlope),
      outsideHeapSlopeBytesPerMin: Math.round(outside.slope),
      outsideHeapLateSlopeBytesPerMin: Math.round(outside.lateSlope),
      outsideHeapStart: first === undefined ? null : outsideHeap(first),
      outsideHeapEnd: last === undefined ? null : outsideHeap(last),
      fdSlopePerMin: Number(fds.slope.toFixed(2)),
      heapStart: first?.heapUsed ?? null,
      heapEnd: last?.heapUsed ?? null,
      rssStart: first?.rss ?? null,
      rssEnd: last?.rss ?? null,
      rssMax: Math.max(0, ...samples.map((s) => s.rss)),
      fdsStart: first?.fds ?? null,
      fdsEnd: last?.fds ?? null,
      fdsAfterClose,
      diskBytesMax: diskMax,
      diskBytesEnd: last?.diskBytes ?? null,
      diskBoundBytes,
      samples: samples.map((s) => [
        s.atMs,
        s.heapUsed,
        s.heapTotal,
        s.external,
        s.rss,
        s.fds,
        s.diskBytes,
        s.connections,
      ]),
      sampleColumns: ['atMs', 'heapUsed', 'heapTotal', 'external', 'rss', 'fds', 'diskBytes', 'connections'],
      failures,
    }
    await reportFigures('soak', figures)
    const lines = [
      `soak: ${(loadMs / 1000).toFixed(0)} s of load (warm-up ${warmupMs / 1000} s), drained in ${drainMs} ms`,
      `  published ${ledger.published} (${figures.publishRatePerSec}/s), acknowledged ${f.acknowledged}, failed ${ledger.publishFailures}`,
      `  ackers: delivered ${f.delivered}, deliveries ${ledger.ackersDeliveryCount}, duplicates ${ledger.duplicates}, lost ${f.lostAckers}`,
      `  flaky: nacks ${nacks}, lease expiries ${leaseExpiries}, redeliveries seen ${flakyRedeliveries} (broker: ${redeliveries}), dead-lettered ${f.deadLettered}, lost ${f.lostFlaky}`,
      `  connections opened ${connectionsOpened}, left after close ${connectionsLeft}; client errors ${JSON.stringify(Object.fromEntries(clientErrors))}`,
      `  heap ${mib(first?.heapUsed ?? 0)} -> ${mib(last?.heapUsed ?? 0)}, floor slope ${mib(heap.slope)}/min (late ${mib(heap.lateSlope)}/min)`,
      `  rss ${mib(first?.rss ?? 0)} -> ${mib(last?.rss ?? 0)} (max ${mib(figures.rssMax)}), slope ${mib(rss.slope)}/min (late ${mib(rss.lateSlope)}/min)`,
      `  outside the V8 heap ${mib(figures.outsideHeapStart ?? 0)} -> ${mib(figures.outsideHeapEnd ?? 0)}, slope ${mib(outside.slope)}/min (late ${mib(outside.lateSlope)}/min)`,
      `  fds ${first?.fds ?? '?'} -> ${last?.fds ?? '?'} (after close ${fdsAfterClose}), slope ${fds.slope.toFixed(2)}/min`,
      `  disk max ${mib(diskMax)} (bound ${mib(diskBoundBytes)}), ${samples.length} samples, ${warm.length} after warm-up` +
        (judged ? '' : ` (leaks not judged: that takes ${minJudgedMs / 60_000} minutes after warm-up)`),
      failures.length === 0 ? 'soak: PASS' : `soak: FAIL\n  - ${failures.join('\n  - ')}`,
    ]
    process.stdout.write(lines.join('\n') + '\n')
    return failures.length === 0 ? 0 : 1
  } finally {
    stop.abort()
    for (const sluice of [...clients]) await disconnect(sluice).catch(() => undefined)
    await stopBroker(broker)
    await rm(dir, { recursive: true, force: true })
    release()
  }
}

await runWorkload('soak', main)
