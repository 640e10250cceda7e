import { Packr } from 'msgpackr'
import { partitionForKey } from '../../core/partition.ts'
import type { AppendRecord } from '../../core/types.ts'

/** How long a producer's sequence is remembered (a publish retried after a lost answer is recognised within it). */
const producerWindowMs = 120_000

/** Plain MessagePack, as the server's cmsgpack reads it: arrays, strings, numbers, booleans. */
const packr = new Packr({ useRecords: false, moreTypes: false })

/**
 * The partition of a record: by key; without one, by its id, so that a retry
 * (which carries the same id and producer sequence) lands where the first
 * try did and its dedup entry is found there.
 */
export function partitionOf(record: AppendRecord, partitions: number): number {
  return partitionForKey(record.key ?? record.id, partitions)
}

/**
 * The script arguments of the records appended to one partition: what the
 * script reads of each record, packed in one MessagePack array (8 values a
 * record, see appendPrelude), then each payload as an argument of its own, so
 * that payloads are never copied into the pack and ioredis encodes a handful
 * of arguments, not nine a record. `sequences: false` leaves out the producer
 * sequences (a transaction's own entry recognises its repeat).
 */
export function appendArgs(
  records: readonly AppendRecord[],
  dedupWindowMs: number,
  sequences = true,
): (Buffer | number)[] {
  const meta: (string | number | boolean)[] = []
  for (const record of records) {
    const byId = record.idFromProducer === true && dedupWindowMs > 0
    const bySequence = sequences && record.producerId !== undefined && record.sequence !== undefined
    const headers = Object.keys(record.headers).length === 0 ? false : JSON.stringify(record.headers)
    meta.push(
      byId ? `i:${record.id}` : false,
      bySequence ? `p:${record.producerId}:${Math.floor(record.sequence / 64)}` : false,
      bySequence ? record.sequence : 0,
      record.id,
      record.key ?? false,
      headers,
      record.format,
      record.deliverAt,
    )
  }
  return [dedupWindowMs, packr.pack(meta), ...records.map((record) => record.payload as Buffer)]
}

export { producerWindowMs }

/** How long each of a partition's two dedup hashes is current: the longest window an entry in it counts for. */
export function dedupSpanMs(dedupWindowMs: number): number {
  return Math.max(dedupWindowMs, producerWindowMs)
}
