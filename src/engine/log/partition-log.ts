import type { LogRecord, RecordDraft } from './record.ts'

/** What recovery cut from a torn tail; reported, never silent. */
export interface RecoveryReport {
  readonly path: string
  readonly cutBytes: number
  readonly reason: string
  /** The offset the log continues from. */
  readonly nextOffset: number
}

export interface RetentionPolicy {
  readonly now: number
  readonly maxAgeMs: number | null
  readonly maxBytes: number | null
  /** Every offset below this is acknowledged by every subscription; null when there are no subscriptions. */
  readonly consumedBefore: number | null
}

export interface RetentionResult {
  /** Messages deleted by this pass. */
  readonly deletedMessages: number
  /** The first offset still stored. */
  readonly startOffset: number
}

/**
 * One partition's append-only log. Offsets start at 0, are dense and only
 * grow. A record becomes readable once stored as the durability asks; an
 * `append` resolves at the same moment.
 */
export interface PartitionLog {
  /** The first offset still stored. */
  readonly startOffset: number
  /** The next offset to be assigned: one past the last readable record. */
  readonly endOffset: number
  /** Bytes stored. */
  readonly bytes: number
  /**
   * Bytes stored at `offset` and after, at most a few KiB over the exact
   * figure (never under it): what a byte bound on the backlog counts.
   */
  bytesFrom(offset: number): number
  /** Stores records, all or none; resolves with them, offsets and timestamps assigned. */
  append(drafts: readonly RecordDraft[]): Promise<LogRecord[]>
  /** Up to `max` records from `from` (from `startOffset` if `from` is older). */
  read(from: number, max: number): Promise<LogRecord[]>
  /** Called after each append with the new `endOffset`. Returns an unsubscribe function. */
  onAppend(listener: (endOffset: number) => void): () => void
  /** Deletes old data by age, size and consumption, in whole segments. */
  applyRetention(policy: RetentionPolicy): Promise<RetentionResult>
  /** Makes everything written so far durable (no-op in memory). */
  sync(): Promise<void>
  /** Waits for appends in progress, then closes; later calls fail with CLOSED. */
  close(): Promise<void>
}
