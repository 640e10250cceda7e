import { crc32c } from '@node-rs/crc32'
import { isPayloadFormat, type PayloadFormat } from '../../core/codec.ts'
import type { Headers, StoredRecord } from '../../core/types.ts'

/**
 * Record: the unit of a segment file. All integers big-endian.
 *
 *   length        u32  bytes after this field
 *   crc32c        u32  CRC32C of every byte after this field
 *   offset        u64
 *   timestamp     u64  ms since the epoch, when stored
 *   deliverAt     u64  ms since the epoch; 0 = visible at once
 *   sequence      u64  producer sequence; meaningful only with a producer id
 *   flags         u8   low 4 bits: payload format (0 bytes, 1 JSON, 2 custom codec);
 *                      0x80: the id was given by the producer (deduplicated within the topic's window)
 *   idLength      u16  then the message id, UTF-8
 *   producerLength u16 then the producer id, UTF-8 (0 = none)
 *   keyLength     i32  then the key, UTF-8; -1 = no key
 *   headerCount   u16  then per header: nameLength u16, name, valueLength u32, value
 *   payloadLength u32  then the payload
 */

export interface LogRecord {
  readonly offset: number
  readonly timestamp: number
  readonly deliverAt: number
  readonly producerId: string
  readonly sequence: number
  readonly format: PayloadFormat
  /** The id was given by the producer (so a repeat of it within the topic's dedup window is the same message). */
  readonly idFromProducer: boolean
  readonly id: string
  readonly key: string | null
  readonly headers: Headers
  readonly payload: Buffer
}

/** A record before it has an offset and a timestamp; without a producer id it has no sequence either. */
export type RecordDraft = Omit<
  LogRecord,
  'offset' | 'timestamp' | 'payload' | 'producerId' | 'sequence' | 'idFromProducer'
> & {
  readonly payload: Uint8Array
  readonly producerId?: string
  readonly sequence?: number
  readonly idFromProducer?: boolean
}

const idFromProducerFlag = 0x80

const fixedBytes = 4 + 4 + 8 + 8 + 8 + 8 + 1 + 2 + 2 + 4 + 2 + 4
/** Bytes a record takes beyond its variable fields. */
export const recordOverheadBytes = fixedBytes
/** No record is larger; a length field above it is damage, not data. */
export const maxRecordBytes = 80 * 1024 * 1024

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at)
  buf.writeUInt32BE(value >>> 0, at + 4)
}

function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4)
}

/** The encoded size of a record. */
export function encodedSize(draft: RecordDraft): number {
  let size = fixedBytes + Buffer.byteLength(draft.id) + draft.payload.length
  if (draft.producerId !== undefined) size += Buffer.byteLength(draft.producerId)
  if (draft.key !== null) size += Buffer.byteLength(draft.key)
  for (const name in draft.headers) {
    size += 6 + Buffer.byteLength(name) + Buffer.byteLength(draft.headers[name]!)
  }
  return size
}

/**
 * Encodes a record into `buf` at `at`; returns where the payload starts. `size` is `encodedSize(draft)`.
 * Equivalent to `encodeBody` then `stampRecord`.
 */
export function encodeRecord(
  buf: Buffer,
  at: number,
  size: number,
  draft: RecordDraft,
  offset: number,
  timestamp: number,
): number {
  const payloadAt = encodeBody(buf, at, size, draft)
  stampRecord(buf, at, size, offset, timestamp)
  return payloadAt
}

/**
 * Sets a pre-encoded record's offset and timestamp, then its checksum. Group
 * commit encodes records when they are appended (so no caller memory is kept)
 * and stamps them when their batch is written (when offsets are known).
 */
export function stampRecord(buf: Buffer, at: number, size: number, offset: number, timestamp: number): void {
  writeU64(buf, offset, at + 8)
  writeU64(buf, timestamp, at + 16)
  buf.writeUInt32BE(crc32c(buf.subarray(at + 8, at + size)), at + 4)
}

/** Encodes everything but the offset, the timestamp and the checksum; returns where the payload starts. */
export function encodeBody(buf: Buffer, at: number, size: number, draft: RecordDraft): number {
  buf.writeUInt32BE(size - 4, at)
  let p = at + 8
  writeU64(buf, draft.deliverAt, p + 16)
  writeU64(buf, draft.sequence ?? 0, p + 24)
  buf[p + 32] = draft.format | (draft.idFromProducer === true ? idFromProducerFlag : 0)
  p += 33
  const idLength = buf.write(draft.id, p + 2, 'utf8')
  buf.writeUInt16BE(idLength, p)
  p += 2 + idLength
  const producerLength =
    draft.producerId === undefined || draft.producerId.length === 0 ? 0 : buf.write(draft.producerId, p + 2, 'utf8')
  buf.writeUInt16BE(producerLength, p)
  p += 2 + producerLength
  if (draft.key === null) {
    buf.writeInt32BE(-1, p)
    p += 4
  } else {
    const keyLength = draft.key.length === 0 ? 0 : buf.write(draft.key, p + 4, 'utf8')
    buf.writeInt32BE(keyLength, p)
    p += 4 + keyLength
  }
  const countAt = p
  p += 2
  let count = 0
  for (const name in draft.headers) {
    const nameLength = buf.write(name, p + 2, 'utf8')
    buf.writeUInt16BE(nameLength, p)
    p += 2 + nameLength
    const value = draft.headers[name]!
    const valueLength = value.length === 0 ? 0 : buf.write(value, p + 4, 'utf8')
    buf.writeUInt32BE(valueLength, p)
    p += 4 + valueLength
    count++
  }
  buf.writeUInt16BE(count, countAt)
  buf.writeUInt32BE(draft.payload.length, p)
  p += 4
  buf.set(draft.payload, p)
  const payloadAt = p
  p += draft.payload.length
  if (p !== at + size) throw new Error(`record encoding wrote ${p - at} bytes, expected ${size}`)
  return payloadAt
}

/** Why a record could not be decoded at a position. */
export const DecodeProblem = {
  /** Fewer bytes than the record needs: a torn write, or simply the end of the data read so far. */
  Incomplete: 'incomplete',
  /** The length field is impossible. */
  BadLength: 'bad-length',
  /** The checksum does not match. */
  BadChecksum: 'bad-checksum',
  /** The checksum matches but the fields do not parse. */
  BadFields: 'bad-fields',
} as const
export type DecodeProblem = (typeof DecodeProblem)[keyof typeof DecodeProblem]

export type DecodeResult =
  | { readonly ok: true; readonly record: LogRecord; readonly size: number }
  | { readonly ok: false; readonly problem: DecodeProblem; readonly size: number }

/**
 * Decodes the record at `at` in `buf[at, end)`. The payload is a view into
 * `buf`, not a copy. On failure, `size` is the length the header claims (0 if
 * even the header is incomplete).
 */
export function decodeRecord(buf: Buffer, at: number, end: number = buf.length): DecodeResult {
  if (end - at < 8) return { ok: false, problem: DecodeProblem.Incomplete, size: 0 }
  const size = buf.readUInt32BE(at) + 4
  if (size < fixedBytes || size > maxRecordBytes) return { ok: false, problem: DecodeProblem.BadLength, size }
  if (end - at < size) return { ok: false, problem: DecodeProblem.Incomplete, size }
  const recordEnd = at + size
  if (crc32c(buf.subarray(at + 8, recordEnd)) !== buf.readUInt32BE(at + 4)) {
    return { ok: false, problem: DecodeProblem.BadChecksum, size }
  }
  try {
    let p = at + 8
    const offset = readU64(buf, p)
    const timestamp = readU64(buf, p + 8)
    const deliverAt = readU64(buf, p + 16)
    const sequence = readU64(buf, p + 24)
    const flags = buf[p + 32]!
    const format = flags & 0x0f
    if (!isPayloadFormat(format) || (flags & 0x70) !== 0) return { ok: false, problem: DecodeProblem.BadFields, size }
    const idFromProducer = (flags & idFromProducerFlag) !== 0
    p += 33
    const idLength = buf.readUInt16BE(p)
    const id = buf.toString('utf8', p + 2, p + 2 + idLength)
    p += 2 + idLength
    const producerLength = buf.readUInt16BE(p)
    const producerId = producerLength === 0 ? '' : buf.toString('utf8', p + 2, p + 2 + producerLength)
    p += 2 + producerLength
    const keyLength = buf.readInt32BE(p)
    p += 4
    let key: string | null = null
    if (keyLength >= 0) {
      key = buf.toString('utf8', p, p + keyLength)
      p += keyLength
    }
    const headerCount = buf.readUInt16BE(p)
    p += 2
    const headers: Headers = {}
    for (let i = 0; i < headerCount; i++) {
      const nameLength = buf.readUInt16BE(p)
      const name = buf.toString('utf8', p + 2, p + 2 + nameLength)
      p += 2 + nameLength
      const valueLength = buf.readUInt32BE(p)
      const value = buf.toString('utf8', p + 4, p + 4 + valueLength)
      // Never let stored bytes set a prototype.
      if (name === '__proto__')
        Object.defineProperty(headers, name, { value, enumerable: true, writable: true, configurable: true })
      else headers[name] = value
      p += 4 + valueLength
    }
    const payloadLength = buf.readUInt32BE(p)
    p += 4
    if (p + payloadLength !== recordEnd) return { ok: false, problem: DecodeProblem.BadFields, size }
    const payload = buf.subarray(p, recordEnd)
    return {
      ok: true,
      size,
      record: { offset, timestamp, deliverAt, producerId, sequence, format, idFromProducer, id, key, headers, payload },
    }
  } catch {
    // A read past the record's end: the fields contradict the length.
    return { ok: false, problem: DecodeProblem.BadFields, size }
  }
}

/** The record a draft becomes once stored; `payload` is the stored copy. */
export function storedRecord(draft: RecordDraft, offset: number, timestamp: number, payload: Buffer): LogRecord {
  return {
    offset,
    timestamp,
    deliverAt: draft.deliverAt,
    producerId: draft.producerId ?? '',
    sequence: draft.sequence ?? 0,
    format: draft.format,
    idFromProducer: draft.idFromProducer ?? false,
    id: draft.id,
    key: draft.key,
    headers: draft.headers,
    payload,
  }
}

/** Reads the offset field of the record at `at` without checking it (for index rebuilds of verified data). */
export function peekOffset(buf: Buffer, at: number): number {
  return readU64(buf, at + 8)
}

/** A record as the driver contract hands it out. */
export function toStoredRecord(record: LogRecord, partition: number): StoredRecord {
  return {
    id: record.id,
    key: record.key,
    headers: record.headers,
    payload: record.payload,
    format: record.format,
    deliverAt: record.deliverAt,
    partition,
    offset: record.offset,
    timestamp: record.timestamp,
  }
}
