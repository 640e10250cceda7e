import type { PartitionLog } from '../log/partition-log.ts'
import type { LogRecord } from '../log/record.ts'
import type { PartitionState } from './subscription-state.ts'

/**
 * One partition of a subscription's backlog: the stored messages it has not
 * acknowledged. The queries here read the log and the acknowledged offsets,
 * never the window, so they do not depend on how far reading ahead has got.
 */
export interface PartitionBacklog {
  readonly index: number
  readonly state: PartitionState
  readonly log: PartitionLog
}

/** Messages of a partition at `from` and after that are stored and not acknowledged. */
export function unackedFrom(p: PartitionBacklog, from: number): number {
  const start = Math.max(from, p.state.acks.floor, p.log.startOffset)
  return Math.max(0, p.log.endOffset - start - p.state.acks.countIn(start, p.log.endOffset))
}

/** Stored messages not yet acknowledged. */
export function depth(partitions: readonly PartitionBacklog[]): number {
  let depth = 0
  for (const p of partitions) depth += unackedFrom(p, 0)
  return depth
}

/** Store time of the oldest message not yet acknowledged; null when there is none. */
export async function oldestUnackedTimestamp(partitions: readonly PartitionBacklog[]): Promise<number | null> {
  let oldest: number | null = null
  for (const p of partitions) {
    const from = p.state.acks.nextUnacked(p.log.startOffset)
    if (from >= p.log.endOffset) continue
    const [record] = await p.log.read(from, 1)
    if (record !== undefined) oldest = oldest === null ? record.timestamp : Math.min(oldest, record.timestamp)
  }
  return oldest
}

/** Unacknowledged records from the floor on, in partition order, up to `max`. */
export async function peekUnacked(
  partitions: readonly PartitionBacklog[],
  max: number,
): Promise<{ partition: number; record: LogRecord }[]> {
  const out: { partition: number; record: LogRecord }[] = []
  for (const p of partitions) {
    let from = p.state.acks.nextUnacked(p.log.startOffset)
    while (out.length < max && from < p.log.endOffset) {
      const records = await p.log.read(from, Math.min(1000, max - out.length + 100))
      if (records.length === 0) break
      for (const record of records) {
        if (out.length >= max) break
        if (!p.state.acks.has(record.offset)) out.push({ partition: p.index, record })
      }
      from = p.state.acks.nextUnacked(records[records.length - 1]!.offset + 1)
    }
  }
  return out
}
