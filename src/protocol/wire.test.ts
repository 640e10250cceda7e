import assert from 'node:assert/strict'
import { test } from 'node:test'
import { inspect } from 'node:util'
import fc from 'fast-check'
import { PayloadFormat } from '../core/codec.ts'
import { ErrorCode, SluiceError } from '../core/errors.ts'
import type { AppendRecord, LeasedRecord, LeaseRef, StoredRecord } from '../core/types.ts'
import { decodeFrame, encodeFrame, FrameKind } from './frame.ts'
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

function isProtocolError(err: unknown): boolean {
  assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
  assert.equal(err.code, ErrorCode.Protocol, err.message)
  return true
}

function show(value: unknown): string {
  return inspect(value, { breakLength: Infinity })
}

/** What a value looks like after a trip through a frame (as the broker and client see it). */
function overTheWire(value: unknown): unknown {
  return decodeFrame(encodeFrame(FrameKind.Request, 1, value)).body
}

const safeNat = fc.maxSafeNat()
// `__proto__` is refused as a header name when publishing (core/validate.ts), so it never reaches the wire.
const headersArbitrary = fc.dictionary(
  fc.string({ unit: 'grapheme', maxLength: 12 }).filter((name) => name !== '__proto__'),
  fc.string({ unit: 'grapheme', maxLength: 24 }),
  { maxKeys: 6, noNullPrototype: true },
)
const base = {
  id: fc.string({ unit: 'grapheme', maxLength: 40 }),
  key: fc.option(fc.string({ unit: 'grapheme', maxLength: 20 }), { nil: null }),
  headers: headersArbitrary,
  payload: fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
  format: fc.constantFrom(PayloadFormat.Bytes, PayloadFormat.Json, PayloadFormat.Custom),
  deliverAt: fc.oneof(fc.constant(0), safeNat),
}

const appendRecordArbitrary: fc.Arbitrary<AppendRecord> = fc
  .tuple(
    fc.record({ ...base, idFromProducer: fc.boolean() }, { noNullPrototype: true }),
    fc.option(fc.record({ producerId: fc.string({ minLength: 1, maxLength: 36 }), sequence: safeNat })),
  )
  .map(([record, producer]) => ({ ...record, ...producer }))

const storedRecordArbitrary: fc.Arbitrary<StoredRecord> = fc.record(
  { ...base, partition: fc.nat({ max: 1023 }), offset: safeNat, timestamp: safeNat },
  { noNullPrototype: true },
)

const leasedRecordArbitrary: fc.Arbitrary<LeasedRecord> = fc
  .tuple(storedRecordArbitrary, fc.integer({ min: 1, max: 1000 }))
  .map(([record, attempt]) => ({ ...record, attempt }))

const refArbitrary: fc.Arbitrary<LeaseRef> = fc.record(
  { partition: fc.nat({ max: 1023 }), offset: safeNat, attempt: fc.integer({ min: 1, max: 1000 }) },
  { noNullPrototype: true },
)

test('append records round-trip, directly and through a frame, with and without the request producer', () => {
  fc.assert(
    fc.property(
      fc.array(appendRecordArbitrary, { maxLength: 4 }),
      fc.option(fc.string({ minLength: 1, maxLength: 40 })),
      (records, requestProducer) => {
        // Some records belong to the request's producer: their producer field then travels as nil.
        const mixed = records.map((r, i) =>
          requestProducer !== null && i % 2 === 0 ? { ...r, producerId: requestProducer, sequence: i } : r,
        )
        const wire = mixed.map((r) => encodeAppendRecord(r, requestProducer))
        if (requestProducer !== null && mixed.length > 0) assert.equal(wire[0]![6], null)
        assert.deepEqual(
          wire.map((r) => decodeAppendRecord(r, requestProducer)),
          mixed,
        )
        assert.deepEqual(
          (overTheWire(wire) as unknown[]).map((r) => decodeAppendRecord(r, requestProducer)),
          mixed,
        )
      },
    ),
    { numRuns: 2000 },
  )
})

test('an append record naming the request producer is malformed in a request without one', () => {
  const record: AppendRecord = {
    id: 'm1',
    key: null,
    headers: {},
    payload: Buffer.from('x'),
    format: PayloadFormat.Bytes,
    deliverAt: 0,
    producerId: 'p1',
    sequence: 3,
  }
  assert.throws(() => decodeAppendRecord(encodeAppendRecord(record, 'p1')), isProtocolError)
})

test('receipts round-trip compactly: ids travel only for repeats, whose id is the first one stored', () => {
  fc.assert(
    fc.property(
      fc.array(
        fc.record(
          {
            id: fc.string({ maxLength: 8 }),
            partition: fc.nat({ max: 1023 }),
            offset: safeNat,
            duplicate: fc.boolean(),
          },
          { noNullPrototype: true },
        ),
        { maxLength: 6 },
      ),
      (receipts) => {
        // What the client sent: for a repeat, its own id may differ from the first one's.
        const sent = receipts.map((r) => (r.duplicate ? `retry-of-${r.id}` : r.id))
        const wire = encodeReceipts(receipts)
        assert.deepEqual(decodeReceipts(wire, sent), receipts)
        assert.deepEqual(decodeReceipts(overTheWire(wire), sent), receipts)
        assert.equal(wire.filter((v) => typeof v === 'string').length, receipts.filter((r) => r.duplicate).length)
      },
    ),
    { numRuns: 1000 },
  )
})

test('receipts that do not match the records sent are malformed', () => {
  assert.throws(() => decodeReceipts([0, 1, null], ['a', 'b']), isProtocolError)
  assert.throws(() => decodeReceipts([0, -1, null], ['a']), isProtocolError)
  assert.throws(() => decodeReceipts({}, []), isProtocolError)
})

test('stored records round-trip, directly and through a frame', () => {
  fc.assert(
    fc.property(fc.array(storedRecordArbitrary, { maxLength: 4 }), (records) => {
      const wire = records.map(encodeStoredRecord)
      assert.deepEqual(wire.map(decodeStoredRecord), records)
      assert.deepEqual((overTheWire(wire) as unknown[]).map(decodeStoredRecord), records)
    }),
    { numRuns: 2000 },
  )
})

test('leased records round-trip, directly and through a frame', () => {
  fc.assert(
    fc.property(fc.array(leasedRecordArbitrary, { maxLength: 4 }), (records) => {
      const wire = records.map(encodeLeasedRecord)
      assert.deepEqual(wire.map(decodeLeasedRecord), records)
      assert.deepEqual((overTheWire(wire) as unknown[]).map(decodeLeasedRecord), records)
    }),
    { numRuns: 2000 },
  )
})

test('lease refs round-trip, directly and through a frame', () => {
  fc.assert(
    fc.property(fc.array(refArbitrary, { maxLength: 8 }), (refs) => {
      const wire = refs.map(encodeRef)
      assert.deepEqual(decodeRefs(wire), refs)
      assert.deepEqual(decodeRefs(overTheWire(wire)), refs)
      for (const [i, ref] of refs.entries()) assert.deepEqual(decodeRef(overTheWire(wire[i])), ref)
    }),
    { numRuns: 2000 },
  )
})

test('a payload given as a plain Uint8Array comes back as a Buffer with the same bytes', () => {
  const payload = new Uint8Array([1, 2, 3, 250])
  const record: AppendRecord = { id: 'm', key: null, headers: {}, payload, format: PayloadFormat.Bytes, deliverAt: 0 }
  for (const decoded of [
    decodeAppendRecord(encodeAppendRecord(record)),
    decodeAppendRecord(overTheWire(encodeAppendRecord(record))),
  ]) {
    assert.ok(Buffer.isBuffer(decoded.payload))
    assert.deepEqual([...decoded.payload], [...payload])
  }
})

test('an append record without a producer id decodes without producerId and sequence', () => {
  const record: AppendRecord = {
    id: 'm',
    key: 'k',
    headers: { a: 'b' },
    payload: Buffer.from('x'),
    format: PayloadFormat.Json,
    deliverAt: 0,
  }
  const decoded = decodeAppendRecord(overTheWire(encodeAppendRecord(record)))
  assert.equal('producerId' in decoded, false)
  assert.equal('sequence' in decoded, false)
  assert.deepEqual(decoded, { ...record, idFromProducer: false })
})

// ---- rejection: every field, every wrong shape ----

const notStrings = [1, 0, null, undefined, true, {}, [], ['a'], Buffer.from('a'), 1n, new Date(0)]
const notInts = [
  -1,
  -(2 ** 53),
  1.5,
  0.1,
  NaN,
  Infinity,
  -Infinity,
  2 ** 53,
  2 ** 64,
  '1',
  '',
  null,
  undefined,
  true,
  1n,
  [],
  {},
  [1],
]
const notKeys = notStrings.filter((v) => v !== null)
const notHeaders = [
  null,
  undefined,
  'a=b',
  1,
  [],
  [['a', 'b']],
  { a: 1 },
  { a: null },
  { a: ['b'] },
  { a: {} },
  { a: Buffer.from('b') },
  { a: 'b', c: 2 },
]
const notPayloads = [
  'bytes',
  '',
  [1, 2],
  [],
  1,
  null,
  undefined,
  {},
  { 0: 1, length: 1 },
  new ArrayBuffer(2),
  new Uint16Array(2),
  true,
]
const notFormats = [...notInts, 3, 4, 255, 1.0000001]
const notBooleans = [0, 1, 'true', '', null, undefined, [], {}]

/** Bad values per field index of each encoded shape. */
const appendFieldBad: unknown[][] = [notStrings, notKeys, notHeaders, notPayloads, notFormats, notInts, notStrings]
const storedFieldBad: unknown[][] = [
  notStrings,
  notKeys,
  notHeaders,
  notPayloads,
  notFormats,
  notInts,
  notInts,
  notInts,
  notInts,
]

const validAppend = (): unknown[] =>
  encodeAppendRecord({
    id: 'm-1',
    key: 'k',
    headers: { h: 'v' },
    payload: Buffer.from('p'),
    format: PayloadFormat.Json,
    deliverAt: 0,
    producerId: 'producer-1',
    sequence: 3,
  })
const validStored = (): unknown[] =>
  encodeStoredRecord({
    id: 'm-1',
    key: null,
    headers: {},
    payload: Buffer.from('p'),
    format: PayloadFormat.Bytes,
    deliverAt: 5,
    partition: 1,
    offset: 2,
    timestamp: 3,
  })
const validLeased = (): unknown[] => [...validStored(), 1]

function replaced(array: unknown[], index: number, value: unknown): unknown[] {
  const copy = [...array]
  copy[index] = value
  return copy
}

function rejects(decode: (value: unknown) => unknown, value: unknown, what: string): void {
  assert.throws(() => decode(value), isProtocolError, `accepted ${what}`)
  assert.throws(() => decode(overTheWire(value)), isProtocolError, `accepted ${what} after a frame`)
}

/** `overTheWire` cannot carry undefined or functions; their direct check is enough. */
function rejectsDirect(decode: (value: unknown) => unknown, value: unknown, what: string): void {
  assert.throws(() => decode(value), isProtocolError, `accepted ${what}`)
}

const notArrays = [null, undefined, 1, 'abc', {}, { length: 3, 0: 1, 1: 2, 2: 3 }, Buffer.from([1, 2, 3]), true]

test('the append record decoder rejects every wrong shape with PROTOCOL', () => {
  for (const v of notArrays) rejectsDirect(decodeAppendRecord, v, `append record ${show(v)}`)
  const valid = validAppend()
  assert.ok(decodeAppendRecord(valid))
  for (let n = 0; n < valid.length; n++) rejects(decodeAppendRecord, valid.slice(0, n), `a record of ${n} fields`)
  rejects(decodeAppendRecord, [...valid, 0], 'an extra field')
  for (const [i, bad] of appendFieldBad.entries()) {
    for (const v of bad) rejectsDirect(decodeAppendRecord, replaced(valid, i, v), `field ${i} = ${show(v)}`)
  }
  for (const v of notInts) rejectsDirect(decodeAppendRecord, replaced(valid, 7, v), `sequence ${show(v)}`)
  for (const v of notBooleans) rejectsDirect(decodeAppendRecord, replaced(valid, 8, v), `idFromProducer ${show(v)}`)
})

test('the stored record decoder rejects every wrong shape with PROTOCOL', () => {
  for (const v of notArrays) rejectsDirect(decodeStoredRecord, v, `stored record ${show(v)}`)
  const valid = validStored()
  assert.ok(decodeStoredRecord(valid))
  for (let n = 0; n < valid.length; n++) rejects(decodeStoredRecord, valid.slice(0, n), `a record of ${n} fields`)
  for (const [i, bad] of storedFieldBad.entries()) {
    for (const v of bad) rejectsDirect(decodeStoredRecord, replaced(valid, i, v), `field ${i} = ${show(v)}`)
  }
})

test('the leased record decoder rejects every wrong shape with PROTOCOL', () => {
  for (const v of notArrays) rejectsDirect(decodeLeasedRecord, v, `leased record ${show(v)}`)
  const valid = validLeased()
  assert.ok(decodeLeasedRecord(valid))
  for (let n = 0; n < valid.length; n++) rejects(decodeLeasedRecord, valid.slice(0, n), `a record of ${n} fields`)
  for (const [i, bad] of [...storedFieldBad, notInts].entries()) {
    for (const v of bad) rejectsDirect(decodeLeasedRecord, replaced(valid, i, v), `field ${i} = ${show(v)}`)
  }
})

test('the lease ref decoders reject every wrong shape with PROTOCOL', () => {
  for (const v of notArrays) {
    rejectsDirect(decodeRef, v, `lease ref ${show(v)}`)
    rejectsDirect(decodeRefs, v, `lease refs ${show(v)}`)
  }
  rejects(decodeRef, { partition: 0, offset: 0, attempt: 1 }, 'a ref as an object')
  for (let n = 0; n < 3; n++) rejects(decodeRef, [0, 1, 2].slice(0, n), `a ref of ${n} fields`)
  for (let i = 0; i < 3; i++) {
    for (const v of notInts) rejectsDirect(decodeRef, replaced([0, 1, 2], i, v), `field ${i} = ${show(v)}`)
  }
  rejects(
    decodeRefs,
    [
      [0, 1, 1],
      [0, 2],
    ],
    'one bad ref among good ones',
  )
  rejects(decodeRefs, [[0, 1, 1], null], 'a null among refs')
})

test('an append record with an empty producer id still needs an integer sequence', () => {
  for (const v of ['x', -1, 1.5, null, {}]) {
    rejectsDirect(decodeAppendRecord, replaced(replaced(validAppend(), 6, ''), 7, v), `sequence ${show(v)}`)
  }
})

test('a lease ref with more than three fields is rejected', () => {
  rejects(decodeRef, [0, 1, 2, 3], 'a ref of 4 fields')
  rejects(decodeRef, [0, 1, 2, 'junk'], 'a ref with a junk 4th field')
})

// ---- whatever comes in, a decoder throws PROTOCOL or returns a fully checked value ----

function isNat(v: unknown): boolean {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

function checkCommon(r: Record<string, unknown>): void {
  assert.equal(typeof r['id'], 'string')
  assert.ok(r['key'] === null || typeof r['key'] === 'string')
  const headers = r['headers']
  assert.ok(typeof headers === 'object' && headers !== null && !Array.isArray(headers))
  for (const v of Object.values(headers)) assert.equal(typeof v, 'string')
  assert.ok(Buffer.isBuffer(r['payload']))
  assert.ok(([0, 1, 2] as unknown[]).includes(r['format']))
  assert.ok(isNat(r['deliverAt']))
}

function checkAppend(r: AppendRecord): void {
  const o = r as unknown as Record<string, unknown>
  checkCommon(o)
  assert.equal(typeof o['idFromProducer'], 'boolean')
  if ('producerId' in o) {
    assert.ok(typeof o['producerId'] === 'string' && o['producerId'] !== '')
    assert.ok(isNat(o['sequence']))
    assert.deepEqual(Object.keys(o).sort(), [...Object.keys(base), 'idFromProducer', 'producerId', 'sequence'].sort())
  } else {
    assert.deepEqual(Object.keys(o).sort(), [...Object.keys(base), 'idFromProducer'].sort())
  }
}

function checkStored(r: StoredRecord, extra: string[] = []): void {
  const o = r as unknown as Record<string, unknown>
  checkCommon(o)
  for (const k of ['partition', 'offset', 'timestamp', ...extra]) assert.ok(isNat(o[k]), k)
  assert.deepEqual(Object.keys(o).sort(), [...Object.keys(base), 'partition', 'offset', 'timestamp', ...extra].sort())
}

function checkRef(r: LeaseRef): void {
  assert.deepEqual(Object.keys(r).sort(), ['attempt', 'offset', 'partition'])
  for (const v of Object.values(r)) assert.ok(isNat(v))
}

const decoders: [string, (v: unknown) => unknown, (r: never) => void, () => unknown[]][] = [
  ['append record', decodeAppendRecord, checkAppend, validAppend],
  ['stored record', decodeStoredRecord, (r: StoredRecord) => checkStored(r), validStored],
  ['leased record', decodeLeasedRecord, (r: LeasedRecord) => checkStored(r, ['attempt']), validLeased],
  ['lease ref', decodeRef, checkRef, () => [0, 1, 2]],
  ['lease refs', decodeRefs, (refs: LeaseRef[]) => refs.forEach(checkRef), () => [[0, 1, 2]]],
]

function decodeOrProtocol(decode: (v: unknown) => unknown, check: (r: never) => void, value: unknown): void {
  let result: unknown
  try {
    result = decode(value)
  } catch (err) {
    isProtocolError(err)
    return
  }
  check(result as never)
}

for (const [name, decode, check, valid] of decoders) {
  test(`${name}: any value, or a valid one with fields replaced, added or dropped, is checked or rejected`, () => {
    const anything = fc.anything({ maxDepth: 2, withBigInt: true, withBoxedValues: true, withTypedArray: true })
    const nearValid = fc
      .tuple(fc.array(fc.tuple(fc.nat(), anything), { minLength: 1, maxLength: 3 }), fc.integer({ min: -2, max: 2 }))
      .map(([changes, resize]) => {
        const a = valid()
        for (const [at, v] of changes) a[at % a.length] = v
        if (resize < 0) a.length = Math.max(0, a.length + resize)
        for (let i = 0; i < resize; i++) a.push(null)
        return a
      })
    fc.assert(
      fc.property(fc.oneof(anything, nearValid), (value) => {
        decodeOrProtocol(decode, check, value)
        let wire: unknown
        try {
          wire = overTheWire(value)
        } catch {
          return // not encodable as MessagePack (a symbol, a boxed value...): nothing a peer could send
        }
        decodeOrProtocol(decode, check, wire)
      }),
      { numRuns: 3000 },
    )
  })
}
