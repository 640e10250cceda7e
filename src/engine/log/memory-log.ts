import { ErrorCode, sluiceError } from '../../core/errors.ts'
import type { Clock } from '../../core/clock.ts'
import type { PartitionLog, RetentionPolicy, RetentionResult } from './partition-log.ts'
import { encodedSize, storedRecord, type LogRecord, type RecordDraft } from './record.ts'
import { RecordCache } from './record-cache.ts'

/**
 * A partition's log held in memory (`durability: 'memory'`, and every topic
 * of a `memory:` engine). Same contract as the file log; gone on restart.
 */
export class MemoryLog implements PartitionLog {
  private readonly store = new RecordCache(Infinity)
  private nextOffset = 0
  private firstOffset = 0
  private closed = false
  private readonly listeners = new Set<(endOffset: number) => void>()

  constructor(private readonly clock: Clock) {}

  get startOffset(): number {
    return this.firstOffset
  }

  get endOffset(): number {
    return this.nextOffset
  }

  get bytes(): number {
    return this.store.bytes
  }

  append(drafts: readonly RecordDraft[]): Promise<LogRecord[]> {
    if (this.closed) return Promise.reject(sluiceError(ErrorCode.Closed, 'the log is closed'))
    const timestamp = this.clock.now()
    let bytes = 0
    let payloadBytes = 0
    for (const draft of drafts) {
      bytes += encodedSize(draft)
      payloadBytes += draft.payload.length
    }
    // One copy of all payloads: the caller may reuse its buffers once append returns.
    const copy = Buffer.allocUnsafe(payloadBytes)
    let at = 0
    const records = new Array<LogRecord>(drafts.length)
    for (let i = 0; i < drafts.length; i++) {
      const draft = drafts[i]!
      copy.set(draft.payload, at)
      records[i] = storedRecord(draft, this.nextOffset++, timestamp, copy.subarray(at, at + draft.payload.length))
      at += draft.payload.length
    }
    this.store.add(records, bytes)
    const end = this.nextOffset
    queueMicrotask(() => {
      for (const listener of this.listeners) listener(end)
    })
    return Promise.resolve(records)
  }

  read(from: number, max: number): Promise<LogRecord[]> {
    if (this.closed) return Promise.reject(sluiceError(ErrorCode.Closed, 'the log is closed'))
    return Promise.resolve(this.store.read(Math.max(from, this.firstOffset), max) ?? [])
  }

  onAppend(listener: (endOffset: number) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  applyRetention(policy: RetentionPolicy): Promise<RetentionResult> {
    let total = this.store.bytes
    let keepFrom = this.firstOffset
    for (const batch of this.store.batches()) {
      const consumed = policy.consumedBefore !== null && batch.endOffset <= policy.consumedBefore
      const expired = policy.maxAgeMs !== null && batch.lastTimestamp < policy.now - policy.maxAgeMs
      const overSize = policy.maxBytes !== null && total > policy.maxBytes
      if (!consumed && !expired && !overSize) break
      keepFrom = batch.endOffset
      total -= batch.bytes
    }
    const deletedMessages = keepFrom - this.firstOffset
    if (deletedMessages > 0) {
      this.store.dropBefore(keepFrom)
      this.firstOffset = keepFrom
    }
    return Promise.resolve({ deletedMessages, startOffset: this.firstOffset })
  }

  sync(): Promise<void> {
    return Promise.resolve()
  }

  close(): Promise<void> {
    this.closed = true
    return Promise.resolve()
  }
}
