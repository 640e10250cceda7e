/**
 * Hostile clients: a broker in its own process for SLUICE_HOSTILE_MS
 * (default 2 minutes) while, all at once and in loops:
 * - consumers open with all the credit they may grant and never read their socket;
 * - clients send garbage (random bytes, random frames, HTTP, bad requests);
 * - clients send a length field of 0xffffffff (a 4 GiB frame);
 * - clients open hundreds of connections, hold them, drop them, and again;
 * - clients send half a frame and stall.
 *
 * Meanwhile a good client publishes and consumes with acks. Fails (exit 1)
 * when the broker dies, the good client loses an acknowledged message, sees
 * an error or stalls for more than `maxStallMs`, the broker's RSS passes its
 * start plus `rssAllowanceBytes`, a 4 GiB length is not refused, or
 * connections stay open on the broker once every hostile client is gone.
 */
import { randomBytes } from 'node:crypto'
import { setMaxListeners } from 'node:events'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect as tcpConnect, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { PayloadFormat } from '../src/core/codec.ts'
import { open, SluiceError, type Sluice } from '../src/index.ts'
import { encodeFrame, FrameKind, FrameParser, protocolVersion } from '../src/protocol/frame.ts'
import { Op } from '../src/protocol/ops.ts'
import { encodeAppendRecord } from '../src/protocol/wire.ts'
import { reportFigures, scale } from '../test/fault/report.ts'
import { fixture, runChild, type Child } from '../test/helpers/child.ts'
import { freePort } from '../test/helpers/ports.ts'
import { openConsumerFrame } from '../test/helpers/raw-consumer.ts'
import { withTimeout } from '../test/helpers/with-timeout.ts'
import { guardBroker, loadPhase, mib, runWorkload, stopBroker } from './lib.ts'

const durationMs = scale('SLUICE_HOSTILE_MS', 120_000)
const sampleEveryMs = 2000
/** What the broker may buffer for a client that does not read before cutting it off (the default is 64 MiB). */
const maxBufferedBytes = 4 * 1024 * 1024
/**
 * The broker's RSS may grow this much over its start (measured once the
 * good topic's record cache is full, see `prefillMessages`). What the
 * hostile clients may make the broker hold is bounded by limits it claims:
 * write buffers (deliveries pause once 1 MiB waits for a stuck consumer,
 * so about 2 MiB each with the frame that crossed it), half frames (20 of
 * at most 1 MiB), idle connections (a few KiB each, 300 at once). Measured
 * on 2 cores: 150 to 200 MiB over the start, most of it allocator memory
 * kept after the stuck consumers' large DELIVER frames, flat after the first
 * minute. A broker that kept what a hostile connection sent or was sent
 * passes 256 MiB within seconds: ten greeted connections each stalled inside
 * a 30 MiB frame add 300 MiB.
 */
const rssAllowanceBytes = 256 * 1024 * 1024
/** The good client must publish and receive something at least this often. */
const maxStallMs = 5000
const goodRatePerSecond = 200
const warmupMs = Math.min(3000, durationMs / 10)
/**
 * Published (and consumed) before anything hostile starts, so that the good
 * topic's record cache is full when the broker's RSS is first measured: the
 * engine keeps 4 MiB of stored records per partition (cacheBytesPerPartition
 * in src/engine/engine.ts), about 90,000 records of this size over 3
 * partitions, which cost some 85 MiB of heap and Buffers. At 200 messages/s
 * it would take 8 minutes to fill, and the bound would measure that instead.
 */
const prefillMessages = 100_000
const prefillTimeoutMs = 120_000
const drainTimeoutMs = 30_000
const hardLimitMs = durationMs + prefillTimeoutMs + drainTimeoutMs + 60_000

const goodTopic = 'good'
const bulkTopic = 'bulk'
const bulkMessageBytes = 64 * 1024
const bulkRatePerSecond = 40
const floodSize = 300
const floodHoldMs = 3000
const stalledAtOnce = 20

const { stop, stopped, pause } = loadPhase()
// Every hostile loop pauses on it at once.
setMaxListeners(100, stop.signal)

const figures = {
  hostileConnections: 0,
  garbageConnections: 0,
  garbageSent: 0,
  hugeLengthSent: 0,
  hugeLengthRefused: 0,
  floodRounds: 0,
  floodConnections: 0,
  stuckConsumers: 0,
  stuckCutOff: 0,
  halfFrames: 0,
  hostileConnectFailures: 0,
}

const sockets = new Set<Socket>()

/**
 * A raw TCP connection (see RawClient in test/broker/bad-input.test.ts):
 * resolves once connected; `closed` resolves when the broker (or we) end it.
 */
async function rawConnect(port: number): Promise<{ socket: Socket; closed: Promise<void>; frames: () => number }> {
  const socket = tcpConnect({ host: '127.0.0.1', port, noDelay: true })
  sockets.add(socket)
  figures.hostileConnections++
  const closed = new Promise<void>((resolve) =>
    socket.once('close', () => {
      sockets.delete(socket)
      resolve()
    }),
  )
  socket.on('error', () => undefined)
  await withTimeout(
    new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('error', reject)
    }),
    5000,
    'a TCP connection to the broker',
  ).catch((err: unknown) => {
    figures.hostileConnectFailures++
    socket.destroy()
    throw err
  })
  // Parses what the broker sends (up to 64 MiB frames): counts frames, ignores the rest.
  const parser = new FrameParser(64 * 1024 * 1024)
  let count = 0
  socket.on('data', (data: Buffer) => {
    try {
      count += parser.push(data).length
    } catch {
      // not ours to judge here
    }
  })
  return { socket, closed, frames: () => count }
}

const hello = encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'hostile' })

function frameHeader(length: number, kind: number, id: number): Buffer {
  const header = Buffer.alloc(9)
  header.writeUInt32BE(length, 0)
  header[4] = kind
  header.writeUInt32BE(id, 5)
  return header
}

/** One garbage connection: some bytes the broker must refuse, then wait for it to close (or give up). */
async function garbageOnce(port: number): Promise<void> {
  const raw = await rawConnect(port)
  figures.garbageConnections++
  const variant = Math.floor(Math.random() * 6)
  let bytes: Buffer
  switch (variant) {
    case 0:
      bytes = randomBytes(1 + Math.floor(Math.random() * 8192))
      break
    case 1:
      bytes = Buffer.concat([hello, randomBytes(1 + Math.floor(Math.random() * 8192))])
      break
    case 2: {
      // A frame of plausible length, random kind and body: past the length check, into the decoder.
      const body = randomBytes(1 + Math.floor(Math.random() * 512))
      bytes = Buffer.concat([hello, frameHeader(5 + body.length, Math.floor(Math.random() * 256), 1), body])
      break
    }
    case 3:
      bytes = Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n')
      break
    case 4:
      bytes = Buffer.concat([
        hello,
        encodeFrame(FrameKind.Request, 1, [Op.Read, { topic: goodTopic, partition: -1, from: 0.5, max: 'all' }]),
      ])
      break
    default:
      // Msgpack nested deep: a decoder that recurses blows its stack.
      bytes = Buffer.concat([hello, frameHeader(5 + 50_001, FrameKind.Request, 1), Buffer.alloc(50_001, 0x91)])
  }
  raw.socket.write(bytes)
  figures.garbageSent += bytes.length
  // Random bytes may be a plausible frame still waiting for its end: the broker is right to wait, so give up soon.
  await withTimeout(raw.closed, 500, 'close').catch(() => undefined)
  raw.socket.destroy()
}

/** One connection that says its next frame is 4 GiB long. The broker must close it at once. */
async function hugeLengthOnce(port: number): Promise<boolean> {
  const raw = await rawConnect(port)
  if (Math.random() < 0.5) raw.socket.write(hello)
  raw.socket.write(Buffer.concat([Buffer.from([0xff, 0xff, 0xff, 0xff]), randomBytes(16)]))
  figures.hugeLengthSent++
  const refused = await withTimeout(raw.closed, 5000, 'the broker to refuse a 4 GiB frame').then(
    () => true,
    () => false,
  )
  raw.socket.destroy()
  if (refused) figures.hugeLengthRefused++
  return refused
}

/** Opens `floodSize` connections (some silent, some greeted, some with 3 bytes of a length), holds them, drops them. */
async function floodOnce(port: number): Promise<void> {
  const held: Socket[] = []
  try {
    const opening = Array.from({ length: floodSize }, async (_, i) => {
      const raw = await rawConnect(port)
      held.push(raw.socket)
      if (i % 3 !== 0) raw.socket.write(hello)
      if (i % 3 === 2) raw.socket.write(Buffer.from([0, 0, 0x10]))
    })
    await Promise.allSettled(opening)
    figures.floodConnections += held.length
    figures.floodRounds++
    await pause(floodHoldMs)
  } finally {
    for (const socket of held) socket.destroy()
  }
}

/** Greets, sends the first half of an append (of up to 1 MiB), and stalls for a few seconds. */
async function halfFrameOnce(port: number): Promise<void> {
  const raw = await rawConnect(port)
  const record = encodeAppendRecord({
    id: `half-${figures.halfFrames}`,
    key: null,
    headers: {},
    payload: randomBytes(1024 + Math.floor(Math.random() * 1024 * 1024)),
    format: PayloadFormat.Bytes,
    deliverAt: 0,
  })
  const frame = encodeFrame(FrameKind.Request, 1, [Op.Append, { topic: goodTopic, records: [record] }])
  raw.socket.write(Buffer.concat([hello, frame.subarray(0, Math.floor(frame.length / 2))]))
  figures.halfFrames++
  await pause(3000 + Math.random() * 7000)
  if (Math.random() < 0.5) raw.socket.end()
  else raw.socket.destroy()
  await withTimeout(raw.closed, 5000, 'a stalled connection to close').catch(() => raw.socket.destroy())
}

/**
 * A consumer of `bulk` that grants all the credit it may and never reads its
 * socket: the broker stops pushing once a quarter of `maxBufferedBytes` waits
 * for it, and cuts it off as stalled after `stalledReaderMs` (10 s) without it
 * taking any.
 */
async function stuckConsumerOnce(port: number): Promise<void> {
  const raw = await rawConnect(port)
  figures.stuckConsumers++
  raw.socket.pause()
  raw.socket.write(Buffer.concat([hello, openConsumerFrame(bulkTopic, 'stuck', 1_000_000)]))
  await pause(12_000)
  // Reading now drains what the kernel holds; a connection the broker cut off then ends.
  raw.socket.resume()
  const cutOff = await withTimeout(raw.closed, 2000, 'close').then(
    () => true,
    () => false,
  )
  if (cutOff) figures.stuckCutOff++
  raw.socket.destroy()
}

/** Runs `once` over and over until the hostile phase ends; a failure to connect is counted, not fatal. */
async function loop(once: () => Promise<unknown>, gapMs: number): Promise<void> {
  while (!stopped()) {
    try {
      await once()
    } catch {
      // counted in hostileConnectFailures
    }
    await pause(gapMs)
  }
}

const goodErrors = new Map<string, number>()

function noteGoodError(err: unknown): void {
  const code = err instanceof SluiceError ? err.code : err instanceof Error ? err.message.slice(0, 80) : String(err)
  goodErrors.set(code, (goodErrors.get(code) ?? 0) + 1)
}

/** The good client: publishes at a steady rate and consumes with acks; every acknowledged message must arrive. */
class GoodClient {
  published = 0
  acknowledged = 0
  delivered = 0
  duplicates = 0
  strays = 0
  /** Failures of its publishes, and those its subscription handled itself (a refused ack), by code. */
  readonly errors = goodErrors
  lastAcknowledgedAt = Date.now()
  lastDeliveredAt = Date.now()
  maxPublishStallMs = 0
  maxDeliveryStallMs = 0
  private readonly acked = new Set<number>()
  private readonly seen = new Set<number>()
  private watchdog: NodeJS.Timeout | null = null

  constructor(private readonly sluice: Sluice) {}

  /** Publishes `count` messages in batches, as fast as they are stored; they count like the others. */
  async prefill(count: number): Promise<void> {
    for (let sent = 0; sent < count;) {
      const first = this.published
      const batch = Array.from({ length: Math.min(1000, count - sent) }, (_, i) => ({
        data: { n: first + i },
        key: `k${(first + i) % 32}`,
      }))
      this.published += batch.length
      sent += batch.length
      await this.sluice.publishBatch(goodTopic, batch)
      for (let i = 0; i < batch.length; i++) this.acked.add(first + i)
      this.acknowledged += batch.length
    }
  }

  /** Starts measuring stalls: from now on, something must be acknowledged and received every `maxStallMs`. */
  watch(): void {
    this.lastAcknowledgedAt = this.lastDeliveredAt = Date.now()
    this.watchdog = setInterval(() => this.measureStalls(), 100)
  }

  measureStalls(): void {
    const now = Date.now()
    this.maxPublishStallMs = Math.max(this.maxPublishStallMs, now - this.lastAcknowledgedAt)
    this.maxDeliveryStallMs = Math.max(this.maxDeliveryStallMs, now - this.lastDeliveredAt)
  }

  async consume(): Promise<void> {
    await this.sluice.subscribe(
      goodTopic,
      'good',
      (msg) => {
        const n = (msg.data as { n?: unknown } | null)?.n
        if (typeof n !== 'number' || !Number.isInteger(n) || n < 0 || n >= this.published) {
          this.strays++
          return
        }
        if (this.seen.has(n)) this.duplicates++
        else this.seen.add(n)
        this.delivered++
        this.lastDeliveredAt = Date.now()
      },
      { concurrency: 64 },
    )
  }

  async produce(running: () => boolean): Promise<void> {
    const started = Date.now()
    const inFlight = new Set<Promise<void>>()
    let sent = 0
    while (running()) {
      const due = Math.floor(((Date.now() - started) / 1000) * goodRatePerSecond)
      while (sent < due && inFlight.size < 500) {
        sent++
        const n = this.published++
        const publishing = this.sluice.publish(goodTopic, { n }, { key: `k${n % 32}` }).then(() => {
          this.acknowledged++
          this.acked.add(n)
          this.lastAcknowledgedAt = Date.now()
        }, noteGoodError)
        inFlight.add(publishing)
        void publishing.finally(() => inFlight.delete(publishing))
      }
      await sleep(5)
    }
    await Promise.all(inFlight)
  }

  /** Acknowledged messages not delivered (yet). */
  missing(): number {
    let missing = 0
    for (const n of this.acked) if (!this.seen.has(n)) missing++
    return missing
  }

  stopWatching(): void {
    if (this.watchdog !== null) clearInterval(this.watchdog)
  }
}

interface Sample {
  readonly atMs: number
  readonly rss: number
  readonly heapUsed: number
  readonly heapTotal: number
  readonly external: number
  readonly connections: number
}

async function main(): Promise<number> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-hostile-'))
  let broker: Child | null = null
  const clients: Sluice[] = []
  const release = guardBroker('hostile-clients', hardLimitMs, () => broker)
  try {
    broker = runChild(null, fixture('broker.ts'), [dir, String(await freePort())], {
      SLUICE_MAX_BUFFERED_BYTES: String(maxBufferedBytes),
    })
    let brokerExit: number | string | null = null
    void broker.exited.then((how) => (brokerExit = how))
    // Read through a function: a callback sets it, which narrowing does not see.
    const alive = (): boolean => brokerExit === null
    const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
    const url = `sluice://127.0.0.1:${port}`
    process.stdout.write(`hostile-clients: ${durationMs / 1000} s against broker pid ${broker.pid} (${dir})\n`)
    const ask = async (): Promise<Omit<Sample, 'atMs'>> =>
      (await withTimeout(broker!.ask({ memory: true }), 5000, 'the broker to report memory')) as Omit<Sample, 'atMs'>

    const sluice = await open({ url, onError: noteGoodError })
    clients.push(sluice)
    await sluice.createTopic(goodTopic, { partitions: 3, durability: 'fsync' })
    await sluice.createTopic(bulkTopic, {
      partitions: 2,
      durability: 'interval',
      segmentBytes: 4 * 1024 * 1024,
      retention: { maxBytes: 16 * 1024 * 1024 },
    })
    const good = new GoodClient(sluice)
    await good.consume()
    const bulk = await open({ url })
    clients.push(bulk)
    const prefillStarted = Date.now()
    await good.prefill(prefillMessages)
    while (alive() && good.missing() > 0) {
      if (Date.now() - prefillStarted > prefillTimeoutMs)
        throw new Error(
          `the good client did not receive its ${prefillMessages} first messages in ${prefillTimeoutMs} ms`,
        )
      await sleep(100)
    }
    const prefillMs = Date.now() - prefillStarted
    good.watch()

    const started = Date.now()
    const samples: Sample[] = []
    let sampleFailures = 0
    const sampler = (async () => {
      while (alive() && !(stopped() && samples.at(-1)!.atMs >= durationMs)) {
        const at = Date.now()
        try {
          const m = await ask()
          samples.push({
            atMs: at - started,
            rss: m.rss,
            heapUsed: m.heapUsed,
            heapTotal: m.heapTotal,
            external: m.external,
            connections: m.connections,
          })
        } catch {
          if (alive()) sampleFailures++
        }
        await sleep(Math.max(0, sampleEveryMs - (Date.now() - at)))
      }
    })()

    let goodRunning = true
    const producing = good.produce(() => goodRunning && alive())
    let bulkPublished = 0
    let bulkFailures = 0
    const bulkProducing = (async () => {
      const payload = Buffer.alloc(bulkMessageBytes, 7)
      while (!stopped() && alive()) {
        try {
          await bulk.publishBatch(
            bulkTopic,
            Array.from({ length: bulkRatePerSecond / 10 }, () => ({ data: payload })),
          )
          bulkPublished += bulkRatePerSecond / 10
        } catch {
          bulkFailures++
        }
        await pause(100)
      }
    })()

    await sleep(warmupMs)
    const baseline = await ask()
    const rssStart = baseline.rss
    const connectionsBaseline = baseline.connections
    const hostile = [
      loop(() => garbageOnce(port), 5),
      loop(() => garbageOnce(port), 5),
      loop(() => hugeLengthOnce(port), 50),
      loop(() => floodOnce(port), 1000),
      ...Array.from({ length: stalledAtOnce }, () => loop(() => halfFrameOnce(port), 100)),
      loop(() => stuckConsumerOnce(port), 200),
      loop(() => stuckConsumerOnce(port), 200),
    ]
    const progress = setInterval(() => {
      const last = samples.at(-1)
      process.stdout.write(
        `hostile-clients: ${Math.round((Date.now() - started) / 1000)} s, hostile connections ${figures.hostileConnections}, ` +
          `good acknowledged ${good.acknowledged} delivered ${good.delivered}` +
          (last === undefined ? '\n' : `, broker rss ${mib(last.rss)} connections ${last.connections}\n`),
      )
    }, 15_000)
    while (Date.now() - started < durationMs - 2000 && alive()) await sleep(100)
    stop.abort()
    clearInterval(progress)
    await Promise.all([...hostile, bulkProducing])
    for (const socket of sockets) socket.destroy()
    // The good client runs on a little after the hostile ones stop, then stops publishing and drains.
    while (Date.now() - started < durationMs && alive()) await sleep(100)
    goodRunning = false
    good.stopWatching()
    await producing
    const drainStarted = Date.now()
    while (alive() && good.missing() > 0 && Date.now() - drainStarted < drainTimeoutMs) await sleep(100)
    const drainMs = Date.now() - drainStarted
    const lost = good.missing()
    await sampler

    // Every hostile socket is gone: so must their connections be on the broker.
    let connectionsLeft = -1
    const droppedAt = Date.now()
    while (alive() && Date.now() - droppedAt < 15_000) {
      connectionsLeft = (await ask()).connections - connectionsBaseline
      if (connectionsLeft <= 0) break
      await sleep(250)
    }

    const rssMax = Math.max(rssStart, ...samples.map((s) => s.rss))
    const heapMax = Math.max(0, ...samples.map((s) => s.heapUsed))
    const failures: string[] = []
    if (!alive()) failures.push(`the broker exited (${String(brokerExit)})`)
    if (lost > 0) failures.push(`the good client lost ${lost} acknowledged messages`)
    if (good.strays > 0) failures.push(`the good client received ${good.strays} messages it never published`)
    if (good.errors.size > 0)
      failures.push(`the good client saw errors: ${JSON.stringify(Object.fromEntries(good.errors))}`)
    if (good.maxPublishStallMs > maxStallMs)
      failures.push(`the good client had no publish acknowledged for ${good.maxPublishStallMs} ms`)
    if (good.maxDeliveryStallMs > maxStallMs)
      failures.push(`the good client received nothing for ${good.maxDeliveryStallMs} ms`)
    if (rssMax > rssStart + rssAllowanceBytes)
      failures.push(`broker RSS reached ${mib(rssMax)}, over ${mib(rssStart)} + ${mib(rssAllowanceBytes)}`)
    if (figures.hugeLengthRefused < figures.hugeLengthSent)
      failures.push(
        `${figures.hugeLengthSent - figures.hugeLengthRefused} connections sending a 4 GiB length were not closed within 5 s`,
      )
    if (connectionsLeft > 0)
      failures.push(`${connectionsLeft} hostile connections still open on the broker 15 s after they were dropped`)
    if (sampleFailures > 0) failures.push(`the broker did not answer ${sampleFailures} memory samples within 5 s`)

    const report = {
      durationMs: Date.now() - started,
      prefillMessages,
      prefillMs,
      ...figures,
      goodPublished: good.published,
      goodAcknowledged: good.acknowledged,
      goodDelivered: good.delivered,
      goodDuplicates: good.duplicates,
      goodErrors: Object.fromEntries(good.errors),
      lost,
      maxPublishStallMs: good.maxPublishStallMs,
      maxDeliveryStallMs: good.maxDeliveryStallMs,
      drainMs,
      bulkPublished,
      bulkFailures,
      brokerRestarts: 0,
      rssStart,
      rssMax,
      rssEnd: samples.at(-1)?.rss ?? null,
      rssBound: rssStart + rssAllowanceBytes,
      heapMax,
      connectionsMax: Math.max(0, ...samples.map((s) => s.connections)),
      connectionsLeft,
      sampleFailures,
      samples: samples.map((s) => [s.atMs, s.rss, s.heapUsed, s.heapTotal, s.external, s.connections]),
      sampleColumns: ['atMs', 'rss', 'heapUsed', 'heapTotal', 'external', 'connections'],
      failures,
    }
    await reportFigures('hostile-clients', report)
    const lines = [
      `hostile-clients: ${(report.durationMs / 1000).toFixed(0)} s (after ${prefillMessages} messages prefilled in ${prefillMs} ms)`,
      `  hostile connections ${figures.hostileConnections} (connect failures ${figures.hostileConnectFailures}): ` +
        `garbage ${figures.garbageConnections} (${mib(figures.garbageSent)}), 4 GiB lengths ${figures.hugeLengthSent} (refused ${figures.hugeLengthRefused}), ` +
        `flood ${figures.floodRounds} x ${floodSize}, half frames ${figures.halfFrames}, stuck consumers ${figures.stuckConsumers} (cut off ${figures.stuckCutOff})`,
      `  good client: published ${good.published}, acknowledged ${good.acknowledged}, delivered ${good.delivered}, duplicates ${good.duplicates}, lost ${lost}, errors ${JSON.stringify(report.goodErrors)}`,
      `  longest stall: publish ${good.maxPublishStallMs} ms, delivery ${good.maxDeliveryStallMs} ms (limit ${maxStallMs})`,
      `  bulk published ${bulkPublished} x ${bulkMessageBytes / 1024} KiB (failures ${bulkFailures})`,
      `  broker rss ${mib(rssStart)} -> max ${mib(rssMax)} (bound ${mib(report.rssBound)}), heap max ${mib(heapMax)}, ` +
        `connections max ${report.connectionsMax}, left ${connectionsLeft}`,
      failures.length === 0 ? 'hostile-clients: PASS' : `hostile-clients: FAIL\n  - ${failures.join('\n  - ')}`,
    ]
    process.stdout.write(lines.join('\n') + '\n')
    return failures.length === 0 ? 0 : 1
  } finally {
    stop.abort()
    for (const socket of sockets) socket.destroy()
    for (const client of clients) await withTimeout(client.close(), 45_000, 'a client to close').catch(() => undefined)
    await stopBroker(broker)
    await rm(dir, { recursive: true, force: true })
    release()
  }
}

await runWorkload('hostile-clients', main)
