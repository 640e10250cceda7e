import { ErrorCode, sluiceError } from './errors.ts'
import type { AppendRecord, Headers } from './types.ts'

/**
 * The size a message counts against its topic's `maxMessageBytes`: key,
 * headers and payload (not the id or the storage framing). The one place
 * this is computed, so every runtime refuses the same messages.
 */
export function messageBytes(key: string | null, headers: Headers, payloadLength: number): number {
  let size = payloadLength + (key === null ? 0 : Buffer.byteLength(key))
  for (const name in headers) size += Buffer.byteLength(name) + Buffer.byteLength(headers[name]!)
  return size
}

/** Throws MESSAGE_TOO_LARGE for the first record over `limit`: the whole batch is refused, nothing stored. */
export function checkMessageSizes(topic: string, records: readonly AppendRecord[], limit: number): void {
  for (const record of records) {
    const size = messageBytes(record.key, record.headers, record.payload.length)
    if (size > limit) {
      throw sluiceError(
        ErrorCode.MessageTooLarge,
        `message of ${size} bytes (payload, key and headers) exceeds topic ${JSON.stringify(topic)}'s maxMessageBytes of ${limit}; nothing was stored. Send less, or create the topic with a larger maxMessageBytes`,
        { details: { topic, size, limit, id: record.id } },
      )
    }
  }
}
