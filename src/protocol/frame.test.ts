import assert from 'node:assert/strict'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import fc from 'fast-check'
import { bytewise, frameFuzzProperties, parsePieces, runsOf, splitAt } from '../../scripts/fuzz-frames.ts'
import { PayloadFormat } from '../core/codec.ts'
import { ErrorCode, SluiceError, sluiceError } from '../core/errors.ts'
import type { AppendRecord, ConsumerConfig, LeasedRecord, LeaseRef, StoredRecord } from '../core/types.ts'
import {
  decodeFrame,
  defaultMaxFrameBytes,
  encodeFrame,
  FrameKind,
  FrameParser,
  frameHeaderBytes,
  protocolVersion,
  type Frame,
} from './frame.ts'
import { Op } from './ops.ts'
import {
  decodeAppendRecord,
  decodeLeasedRecord,
  decodeReceipts,
  decodeRef,
  decodeRefs,
  decodeStoredRecord,
  encodeAppendRecord,
  encodeLeasedRecord,
  encodeReceipts,
  encodeRef,
  encodeStoredRecord,
} from './wire.ts'

const goldenPath = fileURLToPath(new URL('../../test/fixtures/golden-frames.json', import.meta.url))
const updateGolden = process.env['SLUICE_UPDATE_GOLDEN'] === '1'
/** Fuzz cases in this file; `SLUICE_FUZZ_RUNS` changes it (scripts/fuzz-frames.ts runs millions). */
const fuzzRuns = Number(process.env['SLUICE_FUZZ_RUNS'] ?? 100_000)

function isProtocolError(err: unknown): boolean {
  assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
  assert.equal(err.code, ErrorCode.Protocol, err.message)
  return true
}

// Realistic, fixed values for the golden frames: nothing here may depend on the clock or randomness.
const producerId = '0190f3c2-7b1e-7a4c-9d2e-5f6a7b8c9d0e'
const orderPlaced: AppendRecord = {
  id: '0190f3c2-7b1f-7000-8000-000000000001',
  key: 'customer-42',
  headers: { 'content-type': 'application/json', traceparent: '00-4bf92f3577b34da6-00f067aa0ba902b7-01' },
  payload: Buffer.from(JSON.stringify({ order: 1001, total: 59.9, items: ['sku-1', 'sku-7'] })),
  format: PayloadFormat.Json,
  deliverAt: 0,
  producerId,
  sequence: 17,
  idFromProducer: false,
}
const reminder: AppendRecord = {
  id: 'reminder-1001',
  key: null,
  headers: {},
  payload: Buffer.from([0x00, 0x01, 0xfe, 0xff]),
  format: PayloadFormat.Bytes,
  deliverAt: 1_767_225_600_000,
  producerId,
  sequence: 18,
  idFromProducer: true,
}
const stored: StoredRecord = {
  id: orderPlaced.id,
  key: orderPlaced.key,
  headers: orderPlaced.headers,
  payload: orderPlaced.payload,
  format: orderPlaced.format,
  deliverAt: 0,
  partition: 2,
  offset: 40_961,
  timestamp: 1_767_225_000_123,
}
const leased: LeasedRecord = { ...stored, attempt: 3 }
const refs: LeaseRef[] = [
  { partition: 2, offset: 40_961, attempt: 3 },
  { partition: 0, offset: 7, attempt: 1 },
]
const consumerConfig: ConsumerConfig = {
  delivery: 'at-least-once',
  ordering: 'key',
  startAt: 'earliest',
  ackTimeoutMs: 30_000,
  maxLeaseMs: 300_000,
  maxAttempts: 5,
  backoff: { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0.2 },
  deadLetter: 'orders.dead',
}

/** A REQUEST for every op, with arguments shaped as src/client sends them. */
const requestArgs: Record<Op, unknown> = {
  [Op.CreateTopic]: {
    name: 'orders',
    config: { partitions: 3, durability: 'fsync', retention: { maxAgeMs: 604_800_000 } },
  },
  [Op.DescribeTopic]: { name: 'orders' },
  [Op.ListTopics]: {},
  [Op.DeleteTopic]: { name: 'orders' },
  [Op.Append]: {
    topic: 'orders',
    producer: producerId,
    records: [encodeAppendRecord(orderPlaced, producerId), encodeAppendRecord(reminder, producerId)],
    timeoutMs: 5000,
  },
  [Op.Read]: { topic: 'orders', partition: 2, from: 40_960, max: 100 },
  [Op.OpenConsumer]: { consumer: 1, topic: 'orders', subscription: 'billing', config: consumerConfig, credit: 32 },
  [Op.CloseConsumer]: { consumer: 1, handed: refs.map(encodeRef) },
  [Op.Ack]: { consumer: 1, refs: refs.map(encodeRef) },
  [Op.Nack]: { consumer: 1, refs: refs.map(encodeRef), delayMs: 5000, reason: 'payment service unavailable' },
  [Op.Extend]: { consumer: 1, refs: refs.map(encodeRef), ms: 30_000 },
  [Op.Release]: { consumer: 1, refs: refs.slice(1).map(encodeRef) },
  [Op.Commit]: {
    consumer: 1,
    ref: encodeRef(refs[0]!),
    txId: '0190f3c2-7b20-7000-8000-00000000c0de',
    outputs: [{ topic: 'invoices', records: [encodeAppendRecord({ ...reminder, id: 'invoice-1001', sequence: 19 })] }],
  },
  [Op.Peek]: { topic: 'orders', subscription: 'billing', max: 10 },
  [Op.DeleteSubscription]: { topic: 'orders', subscription: 'billing' },
  [Op.Stats]: { topic: 'orders', targetTimeToEmptyMs: 60_000 },
  [Op.Cancel]: { request: 5 },
  [Op.Redrive]: { topic: 'orders', options: { ratePerSecond: 50, max: 1000, deadLetterTopic: 'orders.dead' } },
}

interface GoldenCase extends Frame {
  readonly name: string
}

const goldenCases: GoldenCase[] = [
  { name: 'hello', kind: FrameKind.Hello, id: 0, body: { version: protocolVersion, client: 'sluice-js' } },
  {
    name: 'welcome',
    kind: FrameKind.Welcome,
    id: 0,
    body: {
      version: protocolVersion,
      maxFrameBytes: defaultMaxFrameBytes,
      capabilities: {
        durability: ['fsync', 'interval', 'memory'],
        orderings: ['none', 'key', 'partition', 'global'],
        deliveries: ['at-most-once', 'at-least-once'],
        delayedDelivery: true,
      },
    },
  },
  ...Object.values(Op).map((op, i): GoldenCase => ({
    name: `request ${op}`,
    kind: FrameKind.Request,
    id: i + 1,
    body: [op, requestArgs[op]],
  })),
  {
    name: 'response receipts',
    kind: FrameKind.Response,
    id: 5,
    body: [
      true,
      encodeReceipts([
        { id: orderPlaced.id, partition: 2, offset: 40_961, duplicate: false },
        { id: reminder.id, partition: 0, offset: 7, duplicate: true },
      ]),
    ],
  },
  { name: 'response records', kind: FrameKind.Response, id: 6, body: [true, [encodeStoredRecord(stored)]] },
  { name: 'response null', kind: FrameKind.Response, id: 0xffff_ffff, body: [true, null] },
  {
    name: 'response error',
    kind: FrameKind.Response,
    id: 2,
    body: [
      false,
      sluiceError(ErrorCode.TopicNotFound, 'topic "orders" not found (create it or enable autoCreate)', {
        details: { topic: 'orders' },
      }).toJSON(),
    ],
  },
  { name: 'deliver', kind: FrameKind.Deliver, id: 1, body: [encodeLeasedRecord(leased)] },
  { name: 'lease lost', kind: FrameKind.LeaseLost, id: 1, body: [encodeRef(refs[0]!)] },
  { name: 'credit', kind: FrameKind.Credit, id: 1, body: 64 },
  {
    name: 'goodbye',
    kind: FrameKind.Goodbye,
    id: 0,
    body: sluiceError(ErrorCode.Protocol, 'malformed request: unknown operation "frobnicate"').toJSON(),
  },
  {
    name: 'consumer closed',
    kind: FrameKind.ConsumerClosed,
    id: 1,
    body: sluiceError(ErrorCode.Closed, 'subscription billing was deleted', {
      details: { topic: 'orders', subscription: 'billing' },
    }).toJSON(),
  },
]

interface GoldenFile {
  readonly about: string
  readonly frames: { readonly name: string; readonly kind: number; readonly id: number; readonly hex: string }[]
}

function encodeGolden(c: GoldenCase): string {
  return encodeFrame(c.kind, c.id, c.body).toString('hex')
}

function readGolden(): GoldenFile {
  if (updateGolden) {
    const file: GoldenFile = {
      about:
        'Golden frames of the broker protocol, checked by src/protocol/frame.test.ts. A change here is a wire format change. ' +
        'Regenerate: SLUICE_UPDATE_GOLDEN=1 node --import tsx --test src/protocol/frame.test.ts',
      frames: goldenCases.map((c) => ({ name: c.name, kind: c.kind, id: c.id, hex: encodeGolden(c) })),
    }
    writeFileSync(goldenPath, `${JSON.stringify(file, null, 2)}\n`)
  }
  assert.ok(
    existsSync(goldenPath),
    `${goldenPath} is missing; create it with SLUICE_UPDATE_GOLDEN=1 node --import tsx --test src/protocol/frame.test.ts`,
  )
  return JSON.parse(readFileSync(goldenPath, 'utf8')) as GoldenFile
}

const golden = readGolden()

test('the golden file has one frame per case, every frame kind and a request for every op', () => {
  assert.deepEqual(
    golden.frames.map((f) => f.name),
    goldenCases.map((c) => c.name),
    'the golden file lists other frames; regenerate it with SLUICE_UPDATE_GOLDEN=1 if the cases changed on purpose',
  )
  assert.deepEqual(new Set(goldenCases.map((c) => c.kind)), new Set(Object.values(FrameKind)))
  const ops = goldenCases.filter((c) => c.kind === FrameKind.Request).map((c) => (c.body as unknown[])[0])
  assert.deepEqual(ops.sort(), Object.values(Op).sort())
})

for (const c of goldenCases) {
  test(`${c.name}: encodes to its golden bytes and decodes back`, () => {
    const entry = golden.frames.find((f) => f.name === c.name)
    assert.ok(entry !== undefined, `no golden frame "${c.name}"; regenerate with SLUICE_UPDATE_GOLDEN=1`)
    assert.equal(entry.kind, c.kind)
    assert.equal(entry.id, c.id)
    assert.equal(
      encodeGolden(c),
      entry.hex,
      `the encoding of "${c.name}" changed: that is a wire format change (SLUICE_UPDATE_GOLDEN=1 rewrites the fixture)`,
    )
    const bytes = Buffer.from(entry.hex, 'hex')
    assert.equal(bytes.readUInt32BE(0), bytes.length - 4, 'the length field counts the bytes after it')
    assert.deepEqual(decodeFrame(bytes), { kind: c.kind, id: c.id, body: c.body })
    const parsed = new FrameParser().push(bytes)
    assert.deepEqual(parsed, [{ kind: c.kind, id: c.id, body: c.body }])
  })
}

test('records and refs in the golden frames decode back to what was encoded', () => {
  const body = (name: string): unknown => {
    const entry = golden.frames.find((f) => f.name === name)
    assert.ok(entry !== undefined)
    return decodeFrame(Buffer.from(entry.hex, 'hex')).body
  }
  const [, append] = body(`request ${Op.Append}`) as [string, { producer: string; records: unknown[] }]
  assert.deepEqual(
    append.records.map((r) => decodeAppendRecord(r, append.producer)),
    [orderPlaced, reminder],
  )
  const [, receipts] = body('response receipts') as [boolean, unknown]
  assert.deepEqual(decodeReceipts(receipts, [orderPlaced.id, 'reminder-retry']), [
    { id: orderPlaced.id, partition: 2, offset: 40_961, duplicate: false },
    { id: reminder.id, partition: 0, offset: 7, duplicate: true },
  ])
  const [, ack] = body(`request ${Op.Ack}`) as [string, { refs: unknown }]
  assert.deepEqual(decodeRefs(ack.refs), refs)
  const [, commit] = body(`request ${Op.Commit}`) as [string, { ref: unknown; outputs: { records: unknown[] }[] }]
  assert.deepEqual(decodeRef(commit.ref), refs[0])
  assert.deepEqual(
    commit.outputs[0]!.records.map((r) => decodeAppendRecord(r)),
    [{ ...reminder, id: 'invoice-1001', sequence: 19 }],
  )
  const [, records] = body('response records') as [boolean, unknown[]]
  assert.deepEqual(records.map(decodeStoredRecord), [stored])
  assert.deepEqual((body('deliver') as unknown[]).map(decodeLeasedRecord), [leased])
  assert.deepEqual(decodeRefs(body('lease lost')), [refs[0]])
})

const allGolden = Buffer.concat(golden.frames.map((f) => Buffer.from(f.hex, 'hex')))
const allGoldenFrames: Frame[] = goldenCases.map((c) => ({ kind: c.kind, id: c.id, body: c.body }))

test('the parser fed every golden frame one byte at a time yields the same frames', () => {
  const parser = new FrameParser()
  const frames: Frame[] = []
  let inFrame = 0
  for (const byte of bytewise(allGolden)) {
    const out = parser.push(byte)
    inFrame++
    if (out.length > 0) inFrame = 0
    frames.push(...out)
    assert.ok(out.length <= 1)
    assert.equal(parser.pendingBytes, inFrame, 'pendingBytes is the bytes of the frame in progress')
  }
  assert.deepEqual(frames, allGoldenFrames)
  assert.equal(parser.pendingBytes, 0)
})

test('the parser fed the golden frames split at random boundaries yields the same frames', () => {
  fc.assert(
    fc.property(fc.array(fc.nat(), { maxLength: 60 }), fc.integer({ min: 1, max: 3 }), (cuts, copies) => {
      const stream = Buffer.concat(Array.from({ length: copies }, () => allGolden))
      const outcome = parsePieces(splitAt(stream, cuts), defaultMaxFrameBytes)
      assert.equal(outcome.error, null)
      assert.deepEqual(outcome.frames, Array.from({ length: copies }, () => allGoldenFrames).flat())
      assert.equal(outcome.pendingBytes, 0)
    }),
    { numRuns: 300 },
  )
})

test('empty pushes return nothing and change nothing', () => {
  const parser = new FrameParser()
  assert.deepEqual(parser.push(Buffer.alloc(0)), [])
  const hello = encodeFrame(FrameKind.Hello, 0, { version: 1 })
  assert.deepEqual(parser.push(hello.subarray(0, 2)), [])
  assert.deepEqual(parser.push(Buffer.alloc(0)), [])
  assert.equal(parser.pendingBytes, 2)
  assert.deepEqual(parser.push(hello.subarray(2)), [{ kind: FrameKind.Hello, id: 0, body: { version: 1 } }])
})

for (const length of [defaultMaxFrameBytes + 1, 0x8000_0000, 0xffff_ffff]) {
  test(`a length field of ${length} is rejected as soon as its 4 bytes arrive`, () => {
    const field = Buffer.alloc(4)
    field.writeUInt32BE(length)
    // One byte at a time: nothing is held beyond the bytes received, and the 4th byte throws.
    const parser = new FrameParser()
    for (let i = 0; i < 3; i++) {
      assert.deepEqual(parser.push(field.subarray(i, i + 1)), [])
      assert.equal(parser.pendingBytes, i + 1)
    }
    assert.throws(() => parser.push(field.subarray(3)), isProtocolError)
    // All at once, with the start of a body behind it, after a good frame in an earlier push.
    const second = new FrameParser()
    assert.equal(second.push(encodeFrame(FrameKind.Credit, 1, 5)).length, 1)
    const before = process.memoryUsage().arrayBuffers
    assert.throws(() => second.push(Buffer.concat([field, Buffer.alloc(64 * 1024, 0x90)])), isProtocolError)
    assert.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024, 'memory was allocated for the frame')
  })
}

test('a parser limit applies to the length field: equal is accepted, one more is rejected', () => {
  const body = Buffer.from([0xc4, 10, ...Buffer.alloc(10, 7)]) // bin8 of 10 bytes
  const frame = Buffer.alloc(frameHeaderBytes + body.length)
  frame.writeUInt32BE(5 + body.length, 0)
  frame[4] = FrameKind.Request
  frame.writeUInt32BE(9, 5)
  body.copy(frame, frameHeaderBytes)
  const limit = 5 + body.length
  assert.deepEqual(new FrameParser(limit).push(frame), [{ kind: FrameKind.Request, id: 9, body: Buffer.alloc(10, 7) }])
  assert.throws(() => new FrameParser(limit - 1).push(frame.subarray(0, 4)), isProtocolError)
})

test('a frame announced at the largest allowed size is not allocated before its bytes arrive', () => {
  const parser = new FrameParser()
  const header = Buffer.alloc(frameHeaderBytes + 16)
  header.writeUInt32BE(defaultMaxFrameBytes, 0)
  header[4] = FrameKind.Request
  const before = process.memoryUsage().arrayBuffers
  assert.deepEqual(parser.push(header), [])
  assert.equal(parser.pendingBytes, header.length)
  assert.ok(process.memoryUsage().arrayBuffers - before < 8 * 1024 * 1024, 'memory was allocated for the frame')
})

function rawFrame(length: number, kind: number, id: number, body: Buffer): Buffer {
  const frame = Buffer.alloc(frameHeaderBytes + body.length)
  frame.writeUInt32BE(length, 0)
  frame[4] = kind
  frame.writeUInt32BE(id, 5)
  body.copy(frame, frameHeaderBytes)
  return frame
}

const malformedFrames: [string, Buffer][] = [
  ...[0, 1, 2, 3, 4].map((n): [string, Buffer] => [
    `length ${n}, shorter than kind and id`,
    rawFrame(n, 1, 0, Buffer.alloc(0)),
  ]),
  ['an empty body', rawFrame(5, FrameKind.Hello, 0, Buffer.alloc(0))],
  ['kind 0', rawFrame(6, 0, 0, Buffer.from([0xc0]))],
  ['kind 10', rawFrame(6, 10, 0, Buffer.from([0xc0]))],
  ['kind 255', rawFrame(6, 255, 0, Buffer.from([0xc0]))],
  ['bytes after the body value', rawFrame(7, FrameKind.Request, 0, Buffer.from([0xc0, 0xc0]))],
  ['a body cut short', rawFrame(7, FrameKind.Request, 0, Buffer.from([0x92, 0x01]))],
  [
    'a string longer than the body',
    rawFrame(11, FrameKind.Request, 0, Buffer.from([0xdb, 0xff, 0xff, 0xff, 0xff, 0x61])),
  ],
  [
    'an array of 2^32-1 items in 5 bytes',
    rawFrame(10, FrameKind.Request, 0, Buffer.from([0xdd, 0xff, 0xff, 0xff, 0xff])),
  ],
  ['an unknown extension type', rawFrame(8, FrameKind.Request, 0, Buffer.from([0xd4, 0x05, 0x00]))],
  [
    'nesting 100,000 levels deep',
    rawFrame(5 + 100_001, FrameKind.Request, 0, Buffer.alloc(100_001, 0x91).fill(0xc0, 100_000)),
  ],
]

for (const [name, frame] of malformedFrames) {
  test(`a frame with ${name} is rejected with PROTOCOL, whole and byte by byte`, () => {
    assert.throws(() => new FrameParser().push(frame), isProtocolError)
    // Large frames go in 1 KiB pieces: byte by byte is quadratic (the todo test below).
    const pieces =
      frame.length < 4096
        ? bytewise(frame)
        : splitAt(
            frame,
            Array.from({ length: 100 }, (_, i) => i * 1024),
          )
    const outcome = parsePieces(pieces, defaultMaxFrameBytes)
    assert.ok(outcome.error !== null)
  })
}

test('ids use all 32 bits', () => {
  for (const id of [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff]) {
    assert.equal(decodeFrame(encodeFrame(FrameKind.Response, id, null)).id, id)
  }
})

test('feeding a large frame one byte at a time takes linear time', () => {
  // 32 KiB byte by byte takes about 0.1 s with a linear parser; give up after 1 s.
  const frame = encodeFrame(FrameKind.Request, 1, Buffer.alloc(32 * 1024))
  const parser = new FrameParser()
  const deadline = performance.now() + 1000
  let frames = 0
  for (let i = 0; i < frame.length; i++) {
    frames += parser.push(frame.subarray(i, i + 1)).length
    if (i % 1024 === 0 && performance.now() > deadline) {
      assert.fail(`only ${i} of ${frame.length} bytes pushed after 1 s`)
    }
  }
  assert.equal(frames, 1)
})

const properties = frameFuzzProperties()
const runs = runsOf(properties, fuzzRuns)
for (const [i, { name, property }] of properties.entries()) {
  test(`fuzz: ${name} (${runs[i]} cases): frames or PROTOCOL, the same however the bytes are split`, () => {
    fc.assert(property, { numRuns: runs[i]! })
  })
}
