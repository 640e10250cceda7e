import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { after, before, test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import fc from 'fast-check'
import { Broker } from '../../src/broker/server.ts'
import { PayloadFormat } from '../../src/core/codec.ts'
import { RedriveSubscription } from '../../src/core/dead-letters.ts'
import { Engine } from '../../src/engine/engine.ts'
import { open, type Sluice } from '../../src/index.ts'
import {
  defaultMaxFrameBytes,
  encodeFrame,
  FrameKind,
  FrameParser,
  protocolVersion,
  type Frame,
} from '../../src/protocol/frame.ts'
import { Op } from '../../src/protocol/ops.ts'
import { encodeAppendRecord } from '../../src/protocol/wire.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { withTimeout } from '../helpers/with-timeout.ts'

/**
 * A broker fed bad input over raw TCP: each bad connection is closed (after a
 * GOODBYE with code PROTOCOL) and nothing else is disturbed: a well-behaved
 * client publishes and reads the whole time, and the broker stays up.
 */

const waitMs = 5000

/** A raw TCP connection to the broker that collects the frames it receives. */
class RawClient {
  readonly frames: Frame[] = []
  readonly closed: Promise<void>
  /** Set if the broker sent bytes this parser could not read. */
  parseError: unknown = null
  private readonly parser = new FrameParser(64 * 1024 * 1024)

  private constructor(readonly socket: Socket) {
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()))
    socket.on('error', () => undefined)
    socket.on('data', (data: Buffer) => {
      try {
        this.frames.push(...this.parser.push(data))
      } catch (err) {
        this.parseError = err
      }
    })
  }

  static async connect(port: number): Promise<RawClient> {
    const socket = connect({ host: '127.0.0.1', port, noDelay: true })
    openSockets.add(socket)
    socket.once('close', () => openSockets.delete(socket))
    const client = new RawClient(socket)
    await withTimeout(
      new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve)
        socket.once('error', reject)
      }),
      waitMs,
      'a TCP connection to the broker',
    )
    return client
  }

  /** A client that has said HELLO and been welcomed. */
  static async greeted(port: number): Promise<RawClient> {
    const client = await RawClient.connect(port)
    client.send(FrameKind.Hello, 0, { version: protocolVersion, client: 'bad-input-test' })
    await client.frame((f) => f.kind === FrameKind.Welcome, 'WELCOME')
    return client
  }

  send(kind: FrameKind, id: number, body: unknown): void {
    this.socket.write(encodeFrame(kind, id, body))
  }

  write(bytes: Buffer | string): void {
    this.socket.write(bytes)
  }

  async frame(match: (f: Frame) => boolean, what: string): Promise<Frame> {
    let found: Frame | undefined
    await waitFor(what, () => (found = this.frames.find(match)) !== undefined, waitMs)
    return found!
  }

  /** The broker closes this connection, and said GOODBYE with code PROTOCOL first. */
  async expectProtocolGoodbye(what: string): Promise<void> {
    try {
      await withTimeout(this.closed, waitMs, `the broker to close the connection after ${what}`)
    } finally {
      this.socket.destroy()
    }
    assert.equal(this.parseError, null, 'the broker sent bytes that do not parse')
    const goodbye = this.frames.find((f) => f.kind === FrameKind.Goodbye)
    assert.ok(goodbye !== undefined, `no GOODBYE after ${what}`)
    const body = goodbye.body as { code?: unknown; message?: unknown }
    assert.equal(body.code, 'PROTOCOL', `GOODBYE after ${what}: ${String(body.message)}`)
    assert.equal(typeof body.message, 'string')
    assert.equal(this.frames.at(-1), goodbye, 'frames after GOODBYE')
  }

  close(): void {
    this.socket.destroy()
  }
}

const openSockets = new Set<Socket>()

/** The well-behaved client: publishes a message and reads it back, over and over, until stopped. */
class GoodClient {
  cycles = 0
  readonly errors: unknown[] = []
  private running = true
  private readonly loop: Promise<void>

  constructor(
    readonly sluice: Sluice,
    private readonly topic: string,
  ) {
    this.loop = this.run()
  }

  private async run(): Promise<void> {
    while (this.running) {
      try {
        const n = this.cycles
        const receipt = await this.sluice.publish(this.topic, { n }, { key: `k${n % 7}` })
        const [message] = await this.sluice.read<{ n: number }>(this.topic, receipt.partition, receipt.offset, 1)
        assert.deepEqual(message?.data, { n }, 'read back another message than published')
        this.cycles++
      } catch (err) {
        this.errors.push(err)
        return
      }
      await sleep(1)
    }
  }

  /** Waits for `n` more successful publish-and-read cycles; fails on any error. */
  async progresses(n = 3): Promise<void> {
    const target = this.cycles + n
    await waitFor(
      `${n} more publish/read cycles of the good client`,
      () => this.errors.length > 0 || this.cycles >= target,
      waitMs * 2,
    )
    assert.deepEqual(this.errors, [], 'the good client failed')
  }

  async stop(): Promise<void> {
    this.running = false
    await withTimeout(this.loop, waitMs, 'the good client loop to stop')
  }
}

let broker: Broker
let port: number
let good: GoodClient
/** Connections the broker has besides the raw ones of a test: the good client's. */
let baseline: number

before(async () => {
  broker = new Broker(await Engine.open({}), { port: 0, httpPort: null })
  port = (await broker.start()).port
  const sluice = await open({ url: `sluice://127.0.0.1:${port}`, connectTimeoutMs: waitMs, requestTimeoutMs: waitMs })
  await sluice.createTopic('good', { partitions: 3 })
  await sluice.createTopic('bad-input', { partitions: 1 })
  good = new GoodClient(sluice, 'good')
  await good.progresses()
  baseline = broker.connectionCount
})

after(async () => {
  for (const socket of openSockets) socket.destroy()
  await good.stop()
  assert.deepEqual(good.errors, [])
  assert.ok(good.cycles > 10, `the good client completed only ${good.cycles} cycles`)
  await good.sluice.close()
  await withTimeout(broker.stop(), 15_000, 'the broker to stop')
})

/** After each bad connection: it is gone from the broker, and the good client still works. */
async function brokerUnharmed(): Promise<void> {
  await waitFor('the bad connections to be dropped by the broker', () => broker.connectionCount === baseline, waitMs)
  await good.progresses()
}

const hello = { version: protocolVersion, client: 'bad-input-test' }

function rawFrame(length: number, kind: number, id: number, body: Buffer): Buffer {
  const frame = Buffer.alloc(9 + body.length)
  frame.writeUInt32BE(length, 0)
  frame[4] = kind
  frame.writeUInt32BE(id, 5)
  body.copy(frame, 9)
  return frame
}

function lengthField(length: number): Buffer {
  const field = Buffer.alloc(4)
  field.writeUInt32BE(length)
  return field
}

test('the good client works alongside a raw client speaking the protocol correctly', async () => {
  const raw = await RawClient.greeted(port)
  raw.send(FrameKind.Request, 7, [Op.ListTopics, {}])
  const response = await raw.frame((f) => f.kind === FrameKind.Response && f.id === 7, 'the listTopics RESPONSE')
  const [ok, topics] = response.body as [boolean, { name: string }[]]
  assert.equal(ok, true)
  assert.ok(topics.some((t) => t.name === 'good'))
  raw.close()
  await brokerUnharmed()
})

test('a HELLO and a request sent one byte at a time are answered', async () => {
  const raw = await RawClient.connect(port)
  const bytes = Buffer.concat([
    encodeFrame(FrameKind.Hello, 0, hello),
    encodeFrame(FrameKind.Request, 1, [Op.DescribeTopic, { name: 'good' }]),
  ])
  for (let i = 0; i < bytes.length; i++) {
    raw.write(bytes.subarray(i, i + 1))
    await new Promise((resolve) => setImmediate(resolve))
  }
  const response = await raw.frame((f) => f.kind === FrameKind.Response && f.id === 1, 'the describeTopic RESPONSE')
  assert.equal((response.body as [boolean, { name: string }])[1].name, 'good')
  raw.close()
  await brokerUnharmed()
})

const garbage: [string, Buffer][] = [
  ['an HTTP request', Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n')],
  ['a TLS ClientHello', Buffer.from('16030100a5010000a103035f2b', 'hex')],
  ['zeros', Buffer.alloc(64)],
  ['a length of 3', Buffer.from([0, 0, 0, 3, 1, 2, 3])],
  ['a body cut short', rawFrame(8, FrameKind.Hello, 0, Buffer.from([0xd9, 0x10, 0x61]))],
  ['a body with bytes after its value', rawFrame(8, FrameKind.Hello, 0, Buffer.from([0xc0, 0xc0, 0xc0]))],
  [
    'nesting 100,000 levels deep',
    rawFrame(5 + 100_001, FrameKind.Hello, 0, Buffer.alloc(100_001, 0x91).fill(0xc0, 100_000)),
  ],
]

for (const [name, bytes] of garbage) {
  test(`garbage (${name}) closes that connection only, before and after HELLO`, async () => {
    const first = await RawClient.connect(port)
    first.write(bytes)
    await first.expectProtocolGoodbye(name)
    const second = await RawClient.greeted(port)
    second.write(bytes)
    await second.expectProtocolGoodbye(`${name} after HELLO`)
    await brokerUnharmed()
  })
}

test('random garbage in frames of plausible length closes that connection only', async () => {
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ minLength: 1, maxLength: 200 }), fc.nat({ max: 255 }), async (body, kind) => {
      const raw = await RawClient.greeted(port)
      raw.write(rawFrame(5 + body.length, kind, 0, Buffer.from(body)))
      // Random bytes may happen to be a valid frame: then the broker answers or waits; close and move on.
      await withTimeout(raw.closed, 300, 'close').catch(() => undefined)
      raw.close()
    }),
    { numRuns: 60 },
  )
  await brokerUnharmed()
})

const beforeHello: [string, Buffer][] = [
  ['a REQUEST', encodeFrame(FrameKind.Request, 1, [Op.ListTopics, {}])],
  ['a CREDIT', encodeFrame(FrameKind.Credit, 1, 10)],
  ['a GOODBYE', encodeFrame(FrameKind.Goodbye, 0, { code: 'PROTOCOL', message: 'bye' })],
]

for (const [name, bytes] of beforeHello) {
  test(`${name} before HELLO closes that connection`, async () => {
    const raw = await RawClient.connect(port)
    raw.write(bytes)
    await raw.expectProtocolGoodbye(`${name} before HELLO`)
    await brokerUnharmed()
  })
}

const badHellos: [string, unknown][] = [
  ['version 5', { version: 5, client: 'future' }],
  ['version 3 (before REDRIVE)', { version: 3, client: 'old' }],
  ['version 2 (before CONSUMER_CLOSED)', { version: 2, client: 'old' }],
  ['version 1 (before compact appends)', { version: 1, client: 'old' }],
  ['version 0', { version: 0 }],
  ['version "3"', { version: '3' }],
  ['version 1.5', { version: 1.5 }],
  ['no version', { client: 'x' }],
  ['a HELLO that is not an object', 'hello'],
  ['a HELLO that is an array', [1]],
]

for (const [name, body] of badHellos) {
  test(`a HELLO with ${name} closes that connection`, async () => {
    const raw = await RawClient.connect(port)
    raw.send(FrameKind.Hello, 0, body)
    await raw.expectProtocolGoodbye(`HELLO ${name}`)
    assert.equal(raw.frames.filter((f) => f.kind === FrameKind.Welcome).length, 0, 'welcomed anyway')
    await brokerUnharmed()
  })
}

test('a second HELLO closes that connection', async () => {
  const raw = await RawClient.greeted(port)
  raw.send(FrameKind.Hello, 0, hello)
  await raw.expectProtocolGoodbye('a second HELLO')
  await brokerUnharmed()
})

for (const kind of [0, 9, 42, 255]) {
  test(`an unknown frame kind ${kind} closes that connection`, async () => {
    const raw = await RawClient.greeted(port)
    raw.write(rawFrame(6, kind, 1, Buffer.from([0xc0])))
    await raw.expectProtocolGoodbye(`frame kind ${kind}`)
    await brokerUnharmed()
  })
}

for (const kind of [FrameKind.Welcome, FrameKind.Response, FrameKind.Deliver, FrameKind.LeaseLost, FrameKind.Goodbye]) {
  test(`a frame of the broker's kind ${kind} sent by a client closes that connection`, async () => {
    const raw = await RawClient.greeted(port)
    raw.send(kind, 1, [true, null])
    await raw.expectProtocolGoodbye(`frame kind ${kind} from a client`)
    await brokerUnharmed()
  })
}

const badRequests: [string, unknown][] = [
  ['an unknown op', ['frobnicate', {}]],
  ['an op inherited from Object.prototype', ['toString', {}]],
  ['op __proto__', ['__proto__', {}]],
  ['a numeric op', [4, {}]],
  ['no op', []],
  ['a body that is not an array', { op: 'listTopics' }],
  ['a string body', 'listTopics'],
  ['arguments that are not an object', [Op.ListTopics, 'all']],
  ['arguments that are an array', [Op.DescribeTopic, ['good']]],
  ['a topic name that is not a string', [Op.DescribeTopic, { name: 42 }]],
  ['a negative partition', [Op.Read, { topic: 'good', partition: -1, from: 0, max: 1 }]],
  ['a fractional offset', [Op.Read, { topic: 'good', partition: 0, from: 0.5, max: 1 }]],
  ['a CREDIT that is not a count', null],
]

for (const [name, body] of badRequests) {
  test(`a REQUEST with ${name} closes that connection`, async () => {
    const raw = await RawClient.greeted(port)
    if (body === null) raw.send(FrameKind.Credit, 1, 'lots')
    else raw.send(FrameKind.Request, 1, body)
    await raw.expectProtocolGoodbye(name)
    await brokerUnharmed()
  })
}

for (const [name, request] of [
  ['refs that are not refs', [Op.Ack, { consumer: 1, refs: [[0, 'one', 1]] }]],
  ['refs that are not an array', [Op.Nack, { consumer: 1, refs: 'all', delayMs: null }]],
  ['a lease time that is not a number', [Op.Extend, { consumer: 1, refs: [[0, 0, 1]], ms: 'long' }]],
] as const) {
  test(`a REQUEST with ${name} on an open consumer closes that connection`, async () => {
    const raw = await RawClient.greeted(port)
    raw.send(FrameKind.Request, 1, [
      Op.OpenConsumer,
      { consumer: 1, topic: 'bad-input', subscription: 'bad-input-sub', config: {} },
    ])
    const opened = await raw.frame((f) => f.kind === FrameKind.Response && f.id === 1, 'the openConsumer RESPONSE')
    assert.deepEqual(opened.body, [true, null])
    raw.send(FrameKind.Request, 2, request)
    await raw.expectProtocolGoodbye(name)
    await brokerUnharmed()
  })
}

for (const subscription of [RedriveSubscription, '_mine', '.hidden']) {
  test(`OPEN_CONSUMER and DELETE_SUBSCRIPTION on the reserved subscription ${subscription} are refused with INVALID_ARGUMENT and create nothing`, async () => {
    await good.sluice.createTopic('reserved.dlq').catch(() => undefined)
    const raw = await RawClient.greeted(port)
    raw.send(FrameKind.Request, 1, [
      Op.OpenConsumer,
      { consumer: 1, topic: 'reserved.dlq', subscription, config: {}, credit: 10 },
    ])
    raw.send(FrameKind.Request, 2, [Op.DeleteSubscription, { topic: 'reserved.dlq', subscription }])
    for (const [id, op] of [
      [1, 'openConsumer'],
      [2, 'deleteSubscription'],
    ] as const) {
      const response = await raw.frame((f) => f.kind === FrameKind.Response && f.id === id, `the ${op} RESPONSE`)
      const [ok, error] = response.body as [boolean, { code: string; message: string }]
      assert.equal(ok, false, `${op} of ${subscription} was accepted`)
      assert.equal(error.code, 'INVALID_ARGUMENT')
      assert.ok(error.message.includes(`"${subscription}" is reserved`), error.message)
      assert.match(error.message, /choose a name/)
    }
    // A refusal, not a broken connection: the client may go on.
    raw.send(FrameKind.Request, 3, [Op.ListTopics, {}])
    await raw.frame((f) => f.kind === FrameKind.Response && f.id === 3, 'the listTopics RESPONSE')
    const stats = await good.sluice.stats('reserved.dlq')
    assert.deepEqual(
      stats.subscriptions.map((s) => s.subscription),
      [],
      'a refused open created a subscription',
    )
    raw.close()
    await brokerUnharmed()
  })
}

test('a frame over the limit is refused with a message naming the broker flag that raises the limit', async () => {
  const raw = await RawClient.greeted(port)
  raw.write(lengthField(defaultMaxFrameBytes + 1))
  await raw.expectProtocolGoodbye('a frame over the limit')
  const goodbye = raw.frames.find((f) => f.kind === FrameKind.Goodbye)!
  const message = (goodbye.body as { message: string }).message
  assert.match(message, /exceeds the limit of 33554432/)
  assert.match(message, /sluice serve --max-frame-bytes <n>/)
  assert.match(message, /SLUICE_MAX_FRAME_BYTES/)
  await brokerUnharmed()
})

const goodRecord = encodeAppendRecord({
  id: 'fine',
  key: null,
  headers: {},
  payload: Buffer.from('{}'),
  format: PayloadFormat.Json,
  deliverAt: 0,
})

const badAppends: [string, unknown][] = [
  ['records that are not an array', 'records'],
  ['no records', undefined],
  ['a record that is an object', [{ id: 'x', payload: 'y' }]],
  ['a record with too few fields', [goodRecord.slice(0, 7)]],
  ['a record with too many fields', [[...goodRecord, 'extra']]],
  ['a string payload', [goodRecord.map((v, i) => (i === 3 ? 'payload' : v))]],
  ['an unknown payload format', [goodRecord.map((v, i) => (i === 4 ? 9 : v))]],
  ['a negative deliverAt', [goodRecord.map((v, i) => (i === 5 ? -1 : v))]],
  ['a header that is not a string', [goodRecord.map((v, i) => (i === 2 ? { a: 1 } : v))]],
  ['a record naming the request producer in a request without one', [goodRecord.map((v, i) => (i === 6 ? null : v))]],
  ['a good record followed by a bad one', [goodRecord, goodRecord.map((v, i) => (i === 0 ? 7 : v))]],
]

for (const [name, records] of badAppends) {
  test(`an append with ${name} closes that connection and stores nothing`, async () => {
    const raw = await RawClient.greeted(port)
    raw.send(FrameKind.Request, 1, [Op.Append, { topic: 'bad-input', records }])
    await raw.expectProtocolGoodbye(`an append with ${name}`)
    await brokerUnharmed()
    assert.deepEqual(await good.sluice.read('bad-input', 0, 0, 10), [], 'a malformed append stored something')
  })
}

for (const [name, length] of [
  ['4 GiB', 0xffff_ffff],
  ['2 GiB', 0x8000_0000],
  ['one byte over the limit', defaultMaxFrameBytes + 1],
] as const) {
  test(`a length field of ${name} is refused as soon as it arrives, before and after HELLO`, async () => {
    const memoryBefore = process.memoryUsage().arrayBuffers
    for (const greeted of [false, true]) {
      const raw = greeted ? await RawClient.greeted(port) : await RawClient.connect(port)
      raw.write(lengthField(length))
      // No body follows: the broker must not wait for one.
      await raw.expectProtocolGoodbye(`a length of ${length}`)
    }
    assert.ok(
      process.memoryUsage().arrayBuffers - memoryBefore < 16 * 1024 * 1024,
      'the broker allocated for the frame',
    )
    await brokerUnharmed()
  })
}

test('a frame announced at the limit but never sent holds no memory and goes when the client does', async () => {
  const memoryBefore = process.memoryUsage().arrayBuffers
  const raw = await RawClient.greeted(port)
  raw.write(Buffer.concat([lengthField(defaultMaxFrameBytes), Buffer.from([FrameKind.Request, 0, 0, 0, 1, 0x92])]))
  await sleep(100)
  assert.equal(raw.socket.destroyed, false, 'the broker closed a connection that did nothing wrong')
  assert.ok(process.memoryUsage().arrayBuffers - memoryBefore < 16 * 1024 * 1024, 'the broker allocated for the frame')
  await good.progresses()
  raw.close()
  await brokerUnharmed()
})

for (const [name, greet, end] of [
  ['a half HELLO, then end', false, 'end'],
  ['a half request after HELLO, then end', true, 'end'],
  ['a half request after HELLO, then a reset', true, 'reset'],
  ['half a length field, then end', true, 'end-short'],
] as const) {
  test(`${name}: the broker drops the connection`, async () => {
    const raw = greet ? await RawClient.greeted(port) : await RawClient.connect(port)
    const frame = greet
      ? encodeFrame(FrameKind.Request, 1, [Op.Append, { topic: 'bad-input', records: [goodRecord] }])
      : encodeFrame(FrameKind.Hello, 0, hello)
    raw.write(frame.subarray(0, end === 'end-short' ? 2 : Math.floor(frame.length / 2)))
    await sleep(20)
    if (end === 'reset') raw.socket.resetAndDestroy()
    else raw.socket.end()
    await withTimeout(raw.closed, waitMs, 'the connection to close')
    await brokerUnharmed()
    assert.deepEqual(await good.sluice.read('bad-input', 0, 0, 10), [], 'half an append stored something')
  })
}

test('300 idle connections do not disturb the good client, and go when closed', async () => {
  const idle: RawClient[] = []
  try {
    for (let i = 0; i < 300; i++) {
      const raw = i % 3 === 0 ? await RawClient.connect(port) : await RawClient.greeted(port)
      if (i % 3 === 2) raw.write(lengthField(1000).subarray(0, 3)) // and then nothing
      idle.push(raw)
      if (i % 50 === 0) await good.progresses(1)
    }
    await waitFor('300 more connections on the broker', () => broker.connectionCount === baseline + 300, waitMs)
    await good.progresses(20)
    // A new client can still connect and work.
    const another = await open({
      url: `sluice://127.0.0.1:${port}`,
      connectTimeoutMs: waitMs,
      requestTimeoutMs: waitMs,
    })
    try {
      const receipt = await another.publish('good', 'from another client')
      assert.equal((await another.read('good', receipt.partition, receipt.offset, 1))[0]?.data, 'from another client')
    } finally {
      await another.close()
    }
    assert.ok(
      idle.every((raw) => !raw.socket.destroyed),
      'the broker closed idle connections',
    )
  } finally {
    for (const raw of idle) raw.close()
  }
  await brokerUnharmed()
})

test('random requests are answered or refused with PROTOCOL, and never crash the broker', async () => {
  const value = fc.anything({ maxDepth: 2, withBigInt: false, withTypedArray: true, withDate: true })
  const topic = fc.constantFrom('bad-input', 'fuzz-a', 'fuzz-b', 'no-such-topic')
  const args = fc.oneof(
    value,
    fc.dictionary(
      fc.constantFrom(
        'name',
        'topic',
        'partition',
        'from',
        'max',
        'consumer',
        'refs',
        'records',
        'config',
        'subscription',
        'ms',
        'delayMs',
        'reason',
        'credit',
        'ref',
        'txId',
        'outputs',
      ),
      fc.oneof(
        value,
        topic,
        fc.nat({ max: 5 }),
        fc.array(fc.array(fc.nat({ max: 3 }), { maxLength: 4 }), { maxLength: 3 }),
      ),
      { maxKeys: 6 },
    ),
  )
  const ops = Object.values(Op).filter((op) => op !== Op.DeleteTopic)
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...ops), args, async (op, requestArgs) => {
      const raw = await RawClient.greeted(port)
      try {
        let frame: Buffer
        try {
          frame = encodeFrame(FrameKind.Request, 1, [op, requestArgs])
        } catch {
          return // not MessagePack-encodable: nothing a peer could send
        }
        raw.write(frame)
        await waitFor(
          `an answer to ${op}`,
          () => raw.frames.some((f) => f.kind === FrameKind.Response || f.kind === FrameKind.Goodbye),
          waitMs,
        )
        const goodbye = raw.frames.find((f) => f.kind === FrameKind.Goodbye)
        if (goodbye !== undefined) assert.equal((goodbye.body as { code: unknown }).code, 'PROTOCOL')
        else {
          const [ok, result] = raw.frames.find((f) => f.kind === FrameKind.Response)!.body as [boolean, unknown]
          if (!ok) assert.equal(typeof (result as { code: unknown }).code, 'string')
        }
      } finally {
        raw.close()
      }
    }),
    { numRuns: 200 },
  )
  await brokerUnharmed()
})
