import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { PayloadFormat } from '../../core/codec.ts'
import { decodeRecord, DecodeProblem, encodedSize, encodeRecord, type RecordDraft } from './record.ts'

const draftArbitrary: fc.Arbitrary<RecordDraft> = fc.record({
  id: fc.string({ maxLength: 40 }),
  producerId: fc.string({ maxLength: 20 }),
  sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  deliverAt: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
  format: fc.constantFrom(PayloadFormat.Bytes, PayloadFormat.Json, PayloadFormat.Custom),
  idFromProducer: fc.boolean(),
  key: fc.option(fc.string({ unit: 'grapheme', maxLength: 30 }), { nil: null }),
  headers: fc.dictionary(
    fc.string({ minLength: 1, maxLength: 10 }).filter((name) => name !== '__proto__'),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    { maxKeys: 5 },
  ),
  payload: fc.uint8Array({ maxLength: 300 }),
})

function encode(draft: RecordDraft, offset: number, timestamp: number): Buffer {
  const size = encodedSize(draft)
  const buf = Buffer.alloc(size)
  encodeRecord(buf, 0, size, draft, offset, timestamp)
  return buf
}

test('every field of a record survives encoding and decoding', () => {
  fc.assert(
    fc.property(
      draftArbitrary,
      fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
      fc.integer({ min: 0, max: 2 ** 42 }),
      (draft, offset, timestamp) => {
        const buf = encode(draft, offset, timestamp)
        const result = decodeRecord(buf, 0)
        assert.ok(result.ok)
        assert.equal(result.size, buf.length)
        const r = result.record
        assert.deepEqual(
          { ...r, payload: Buffer.from(r.payload) },
          { ...draft, offset, timestamp, payload: Buffer.from(draft.payload), headers: { ...draft.headers } },
        )
      },
    ),
    { numRuns: 2000 },
  )
})

test('a record cut short is incomplete, at every length', () => {
  const buf = encode(
    {
      id: 'id-1',
      producerId: '',
      sequence: 0,
      deliverAt: 0,
      format: PayloadFormat.Json,
      key: 'k',
      headers: { a: 'b' },
      payload: Buffer.from('{"x":1}'),
    },
    7,
    1,
  )
  for (let cut = 0; cut < buf.length; cut++) {
    const result = decodeRecord(buf.subarray(0, cut), 0)
    if (result.ok) assert.fail(`cut at ${cut} decoded`)
    assert.equal(result.problem, DecodeProblem.Incomplete, `cut at ${cut}`)
  }
})

test('any flipped bit is caught by the checksum or the length check', () => {
  const original = encode(
    {
      id: 'id-2',
      producerId: 'p',
      sequence: 3,
      deliverAt: 0,
      format: PayloadFormat.Bytes,
      key: null,
      headers: {},
      payload: Buffer.alloc(64, 7),
    },
    1,
    2,
  )
  for (let byte = 0; byte < original.length; byte++) {
    for (let bit = 0; bit < 8; bit++) {
      const damaged = Buffer.from(original)
      damaged[byte]! ^= 1 << bit
      const result = decodeRecord(damaged, 0)
      assert.equal(result.ok, false, `flip of bit ${bit} in byte ${byte} went unnoticed`)
    }
  }
})

test('zeros are not a record', () => {
  const result = decodeRecord(Buffer.alloc(200), 0)
  if (result.ok) assert.fail('zeros decoded')
  assert.equal(result.problem, DecodeProblem.BadLength)
})
