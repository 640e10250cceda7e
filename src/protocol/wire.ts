import { isPayloadFormat, type PayloadFormat } from '../core/codec.ts'
import { ErrorCode, sluiceError } from '../core/errors.ts'
import type { AppendRecord, Headers, LeasedRecord, LeaseRef, Receipt, StoredRecord } from '../core/types.ts'

/**
 * How records and lease references travel in frame bodies: as arrays, not
 * objects, because there are many of them and field names would triple the
 * bytes. Every decoder checks every field before use.
 *
 *   append record:  [id, key, headers, payload, format, deliverAt, producerId, sequence, idFromProducer]
 *                   producerId: '' for none; nil for the APPEND's own `producer` (sent once, not per record)
 *   receipts:       [partition, offset, firstId, ...] flat, three per record; firstId is nil for a record
 *                   stored now, or the id stored first when the record was recognised as a repeat
 *   stored record:  [id, key, headers, payload, format, deliverAt, partition, offset, timestamp]
 *   leased record:  stored record + [attempt]
 *   lease ref:      [partition, offset, attempt]
 */

export function malformed(what: string): never {
  throw sluiceError(ErrorCode.Protocol, `malformed ${what}`)
}

export function asObject(value: unknown, what: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) malformed(what)
  return value as Record<string, unknown>
}

export function asArray(value: unknown, what: string): unknown[] {
  if (!Array.isArray(value)) malformed(what)
  return value
}

export function asString(value: unknown, what: string): string {
  if (typeof value !== 'string') malformed(what)
  return value
}

export function asInt(value: unknown, what: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) malformed(what)
  return value
}

function asBytes(value: unknown, what: string): Buffer {
  if (!(value instanceof Uint8Array)) malformed(what)
  return Buffer.isBuffer(value) ? value : Buffer.from(value.buffer, value.byteOffset, value.byteLength)
}

function asKey(value: unknown, what: string): string | null {
  if (value === null) return null
  return asString(value, what)
}

function asHeaders(value: unknown, what: string): Headers {
  const object = asObject(value, what)
  let empty = true
  for (const _ in object) {
    empty = false
    break
  }
  if (empty) return {}
  const headers: Headers = {}
  for (const [name, v] of Object.entries(object)) headers[name] = asString(v, `${what} value`)
  return headers
}

function asFormat(value: unknown, what: string): PayloadFormat {
  const n = asInt(value, what)
  if (!isPayloadFormat(n)) malformed(what)
  return n
}

/**
 * `producer`: the APPEND's own producer id; a record of that producer leaves its field nil.
 * `producerId` and `sequence` stand in for the record's own (the client stamps them as it sends).
 */
export function encodeAppendRecord(
  r: AppendRecord,
  producer: string | null = null,
  producerId = r.producerId,
  sequence = r.sequence,
): unknown[] {
  return [
    r.id,
    r.key,
    r.headers,
    r.payload,
    r.format,
    r.deliverAt,
    producer !== null && producerId === producer ? null : (producerId ?? ''),
    sequence ?? 0,
    r.idFromProducer === true,
  ]
}

export function decodeAppendRecord(value: unknown, producer: string | null = null): AppendRecord {
  const a = asArray(value, 'append record')
  if (a.length !== 9) malformed('append record')
  const producerId = a[6] === null && producer !== null ? producer : asString(a[6], 'producer id')
  if (typeof a[8] !== 'boolean') malformed('idFromProducer')
  const sequence = asInt(a[7], 'sequence')
  return {
    id: asString(a[0], 'message id'),
    key: asKey(a[1], 'key'),
    headers: asHeaders(a[2], 'headers'),
    payload: asBytes(a[3], 'payload'),
    format: asFormat(a[4], 'payload format'),
    deliverAt: asInt(a[5], 'deliverAt'),
    idFromProducer: a[8],
    ...(producerId === '' ? {} : { producerId, sequence }),
  }
}

export function encodeReceipts(receipts: readonly Receipt[]): unknown[] {
  const flat = new Array<unknown>(receipts.length * 3)
  for (let i = 0; i < receipts.length; i++) {
    const r = receipts[i]!
    flat[i * 3] = r.partition
    flat[i * 3 + 1] = r.offset
    flat[i * 3 + 2] = r.duplicate ? r.id : null
  }
  return flat
}

/** The receipts of an APPEND of records with these `ids`, in order. */
export function decodeReceipts(value: unknown, ids: readonly string[]): Receipt[] {
  const flat = asArray(value, 'receipts')
  if (flat.length !== ids.length * 3) malformed('receipts')
  const receipts = new Array<Receipt>(ids.length)
  for (let i = 0; i < ids.length; i++) {
    const first = flat[i * 3 + 2]
    receipts[i] = {
      id: first === null ? ids[i]! : asString(first, 'receipt id'),
      partition: asInt(flat[i * 3], 'receipt partition'),
      offset: asInt(flat[i * 3 + 1], 'receipt offset'),
      duplicate: first !== null,
    }
  }
  return receipts
}

export function encodeStoredRecord(r: StoredRecord): unknown[] {
  return [r.id, r.key, r.headers, r.payload, r.format, r.deliverAt, r.partition, r.offset, r.timestamp]
}

export function decodeStoredRecord(value: unknown): StoredRecord {
  const a = asArray(value, 'stored record')
  if (a.length < 9) malformed('stored record')
  return storedRecordOf(a)
}

function storedRecordOf(a: unknown[]): StoredRecord {
  return {
    id: asString(a[0], 'message id'),
    key: asKey(a[1], 'key'),
    headers: asHeaders(a[2], 'headers'),
    payload: asBytes(a[3], 'payload'),
    format: asFormat(a[4], 'payload format'),
    deliverAt: asInt(a[5], 'deliverAt'),
    partition: asInt(a[6], 'partition'),
    offset: asInt(a[7], 'offset'),
    timestamp: asInt(a[8], 'timestamp'),
  }
}

export function encodeLeasedRecord(r: LeasedRecord): unknown[] {
  return [r.id, r.key, r.headers, r.payload, r.format, r.deliverAt, r.partition, r.offset, r.timestamp, r.attempt]
}

export function decodeLeasedRecord(value: unknown): LeasedRecord {
  const a = asArray(value, 'leased record')
  if (a.length < 10) malformed('leased record')
  // One object per record (this is the consumer's hot path): the stored fields, then the attempt.
  const record = storedRecordOf(a) as StoredRecord & { attempt: number }
  record.attempt = asInt(a[9], 'attempt')
  return record
}

export function encodeRef(r: LeaseRef): [number, number, number] {
  return [r.partition, r.offset, r.attempt]
}

export function decodeRef(value: unknown): LeaseRef {
  const a = asArray(value, 'lease ref')
  if (a.length !== 3) malformed('lease ref')
  return { partition: asInt(a[0], 'partition'), offset: asInt(a[1], 'offset'), attempt: asInt(a[2], 'attempt') }
}

export function decodeRefs(value: unknown): LeaseRef[] {
  return asArray(value, 'lease refs').map(decodeRef)
}
