import { isPayloadFormat, type PayloadFormat } from '../core/codec.ts'
import { ErrorCode, sluiceError } from '../core/errors.ts'
import type { AppendRecord, Headers, LeasedRecord, LeaseRef, StoredRecord } from '../core/types.ts'

/**
 * How records and lease references travel in frame bodies: as arrays, not
 * objects, because there are many of them and field names would triple the
 * bytes. Every decoder checks every field before use.
 *
 *   append record:  [id, key, headers, payload, format, deliverAt, producerId, sequence, idFromProducer]
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
  const headers: Headers = {}
  for (const [name, v] of Object.entries(object)) headers[name] = asString(v, `${what} value`)
  return headers
}

function asFormat(value: unknown, what: string): PayloadFormat {
  const n = asInt(value, what)
  if (!isPayloadFormat(n)) malformed(what)
  return n
}

export function encodeAppendRecord(r: AppendRecord): unknown[] {
  return [
    r.id,
    r.key,
    r.headers,
    r.payload,
    r.format,
    r.deliverAt,
    r.producerId ?? '',
    r.sequence ?? 0,
    r.idFromProducer === true,
  ]
}

export function decodeAppendRecord(value: unknown): AppendRecord {
  const a = asArray(value, 'append record')
  if (a.length !== 9) malformed('append record')
  const producerId = asString(a[6], 'producer id')
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

export function encodeStoredRecord(r: StoredRecord): unknown[] {
  return [r.id, r.key, r.headers, r.payload, r.format, r.deliverAt, r.partition, r.offset, r.timestamp]
}

export function decodeStoredRecord(value: unknown): StoredRecord {
  const a = asArray(value, 'stored record')
  if (a.length < 9) malformed('stored record')
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
  const stored = decodeStoredRecord(value)
  return { ...stored, attempt: asInt((value as unknown[])[9], 'attempt') }
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
