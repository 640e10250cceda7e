import type { PayloadFormat } from '../../core/codec.ts'
import { ErrorCode, sluiceError } from '../../core/errors.ts'
import type { Headers, StoredRecord } from '../../core/types.ts'
import type { RedisReply } from './link.ts'

/**
 * A message as a stream entry: fields `i` (id), `k` (key, absent when none),
 * `h` (headers as JSON), `f` (payload format), `d` (payload bytes), `t`
 * (stored at, ms) and `a` (deliver at, ms; 0 at once). The stream id is
 * `0-<offset + 1>`.
 */

/** The stream id of an offset. */
export function entryId(offset: number): string {
  return `0-${offset + 1}`
}

/** The offset of a stream id `0-<n>`. */
export function offsetOf(id: string | Buffer): number {
  const text = id.toString()
  return Number(text.slice(text.indexOf('-') + 1)) - 1
}

/** Decodes an entry's field list (as the scripts and XRANGE answer it). */
export function recordOf(fieldList: RedisReply, partition: number, offset: number): StoredRecord {
  if (!Array.isArray(fieldList)) throw corrupt(partition, offset)
  const fields = new Map<string, Buffer>()
  for (let i = 0; i + 1 < fieldList.length; i += 2) {
    const name = fieldList[i]
    const value = fieldList[i + 1]
    if (Buffer.isBuffer(name) && Buffer.isBuffer(value)) fields.set(name.toString(), value)
  }
  const id = fields.get('i')
  const payload = fields.get('d')
  if (id === undefined || payload === undefined) throw corrupt(partition, offset)
  const key = fields.get('k')
  return {
    id: id.toString(),
    key: key === undefined ? null : key.toString(),
    headers: JSON.parse(fields.get('h')?.toString() ?? '{}') as Headers,
    payload,
    format: Number(fields.get('f')?.toString() ?? '0') as PayloadFormat,
    deliverAt: Number(fields.get('a')?.toString() ?? '0'),
    partition,
    offset,
    timestamp: Number(fields.get('t')?.toString() ?? '0'),
  }
}

/** XRANGE's answer: [[id, fields], ...]. */
export function recordsOf(reply: RedisReply, partition: number): StoredRecord[] {
  if (!Array.isArray(reply)) return []
  return reply.map((entry) => {
    if (!Array.isArray(entry) || !Buffer.isBuffer(entry[0])) throw corrupt(partition, -1)
    return recordOf(entry[1] ?? null, partition, offsetOf(entry[0]))
  })
}

function corrupt(partition: number, offset: number): Error {
  return sluiceError(
    ErrorCode.Corrupt,
    `a stream entry of partition ${partition}${offset >= 0 ? ` at offset ${offset}` : ''} is not a Sluice message (was the key written by something else?)`,
    { details: { partition, offset } },
  )
}

/** A reply element as text. */
export function text(reply: RedisReply | undefined): string {
  if (Buffer.isBuffer(reply)) return reply.toString()
  if (typeof reply === 'number') return String(reply)
  return ''
}

/** A reply element as a number. */
export function num(reply: RedisReply | undefined): number {
  return Number(text(reply))
}
