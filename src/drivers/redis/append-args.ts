import { partitionForKey } from '../../core/partition.ts'
import type { AppendRecord } from '../../core/types.ts'

/** How long a producer's sequence is remembered (a publish retried after a lost answer is recognised within it). */
const producerWindowMs = 120_000

/**
 * The partition of a record: by key; without one, by its id, so that a retry
 * (which carries the same id and producer sequence) lands where the first
 * try did and its dedup entry is found there.
 */
export function partitionOf(record: AppendRecord, partitions: number): number {
  return partitionForKey(record.key ?? record.id, partitions)
}

/** The 9 script arguments of one record (see appendScript). */
export function appendArgs(record: AppendRecord, dedupWindowMs: number): (string | Buffer | number)[] {
  const byId = record.idFromProducer === true && dedupWindowMs > 0
  const bySequence = record.producerId !== undefined && record.sequence !== undefined
  return [
    byId ? `i:${record.id}` : '',
    dedupWindowMs,
    bySequence ? `p:${record.producerId}:${record.sequence}` : '',
    record.id,
    record.key === null ? '-' : `+${record.key}`,
    JSON.stringify(record.headers),
    record.format,
    record.payload as Buffer,
    record.deliverAt,
  ]
}

export { producerWindowMs }

/** How long each of a partition's two dedup hashes is current: the longest window an entry in it counts for. */
export function dedupSpanMs(dedupWindowMs: number): number {
  return Math.max(dedupWindowMs, producerWindowMs)
}
