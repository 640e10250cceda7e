import { ErrorCode, sluiceError } from '../../core/errors.ts'
import type { Clock } from '../../core/clock.ts'
import { FileLog } from './file-log.ts'
import { nodeFileSystem, type FileSystem } from './files.ts'
import type { PartitionLog, RetentionPolicy, RetentionResult } from './partition-log.ts'
import { encodedSize, storedRecord, type LogRecord, type RecordDraft } from './record.ts'
import { RecordCache } from './record-cache.ts'

/**
 * A partition's log held in memory (`durability: 'memory'`, and every topic
 * of a `memory:` engine). Same contract as the file log; gone on restart.
 *
 * Memory is bounded: the newest messages stay in memory up to `budgetBytes`;
 * older ones spill, oldest first, to files in `spillDir` (written, never
 * fsynced, deleted on close) and are read back from there. Offsets
 * [startOffset, spilledEnd) live on disk, [spilledEnd, endOffset) in memory.
 */
export interface MemoryLogOptions {
  readonly clock: Clock
  /** Bytes of messages kept in memory (Infinity: never spill). */
  readonly budgetBytes: number
  /** Where spill files go, made on first use. */
  readonly spillDir?: () => string
  readonly fs?: FileSystem
}

export class MemoryLog implements PartitionLog {
  private readonly store = new RecordCache(Infinity)
  private nextOffset = 0
  private firstOffset = 0
  private closed = false
  private readonly listeners = new Set<(endOffset: number) => void>()
  private spill: FileLog | null = null
  private spilling: Promise<void> | null = null
  private readonly clock: Clock

  constructor(private readonly options: MemoryLogOptions) {
    this.clock = options.clock
  }

  get startOffset(): number {
    return this.firstOffset
  }

  get endOffset(): number {
    return this.nextOffset
  }

  get bytes(): number {
    return this.store.bytes + (this.spill?.bytes ?? 0)
  }

  bytesFrom(offset: number): number {
    const inMemory = this.store.firstOffset ?? this.nextOffset
    if (offset >= inMemory || this.spill === null) return this.store.bytesFrom(offset)
    return this.spill.bytesFrom(offset) + this.store.bytes
  }

  /** Bytes held in memory (the spilled rest is on disk). */
  get memoryBytes(): number {
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
    if (this.store.bytes <= this.options.budgetBytes) return Promise.resolve(records)
    this.spilling ??= this.spillOldest().finally(() => (this.spilling = null))
    // Over budget: the append settles once the oldest are on disk, so a producer faster than the disk waits
    // instead of growing memory. The records are stored either way (a failed spill keeps them in memory).
    return this.spilling.then(
      () => records,
      () => records,
    )
  }

  /** Moves the oldest messages to the spill files until memory is back under 3/4 of the budget. */
  private async spillOldest(): Promise<void> {
    while (!this.closed && this.store.bytes > (this.options.budgetBytes * 3) / 4) {
      const from = this.store.firstOffset!
      // Whole batches only: memory drops whole batches, and the spill must start exactly where memory does.
      const records = this.store.oldestBatches(1024 * 1024)
      if (records.length === 0) return
      if (this.spill !== null && this.spill.endOffset !== from) {
        // Retention emptied the spill files and then dropped memory past their end: start anew where memory begins.
        await this.spill.close()
        await (this.options.fs ?? nodeFileSystem).removeTree(this.options.spillDir!())
        this.spill = null
      }
      if (this.spill === null) {
        if (this.options.spillDir === undefined) return
        this.spill = await FileLog.open({
          dir: this.options.spillDir(),
          fs: this.options.fs ?? nodeFileSystem,
          clock: this.clock,
          durability: 'none',
          fsyncIntervalMs: 1000,
          segmentBytes: 8 * 1024 * 1024,
          cacheBytes: 1024 * 1024,
          initialOffset: from,
        })
      }
      // Stored with their own offsets: the spill log continues exactly where memory begins.
      const stored = await this.spill.append(records)
      if (stored[0]?.offset !== from) throw new Error(`spill log out of step: wrote ${stored[0]?.offset} for ${from}`)
      // Read from disk from now on; memory keeps whole batches, so some may stay until the next pass.
      this.store.dropBefore(from + records.length)
    }
  }

  read(from: number, max: number): Promise<LogRecord[]> {
    if (this.closed) return Promise.reject(sluiceError(ErrorCode.Closed, 'the log is closed'))
    const start = Math.max(from, this.firstOffset)
    const inMemory = this.store.firstOffset ?? this.nextOffset
    if (start < inMemory && this.spill !== null) return this.spill.read(start, Math.min(max, inMemory - start))
    return Promise.resolve(this.store.read(start, max) ?? [])
  }

  onAppend(listener: (endOffset: number) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async applyRetention(policy: RetentionPolicy): Promise<RetentionResult> {
    const before = this.firstOffset
    if (this.spill !== null) {
      const spilled = await this.spill.applyRetention({
        ...policy,
        maxBytes: policy.maxBytes === null ? null : Math.max(0, policy.maxBytes - this.store.bytes),
      })
      this.firstOffset = Math.max(this.firstOffset, spilled.startOffset)
    }
    if (this.spill === null || this.firstOffset >= (this.store.firstOffset ?? this.nextOffset)) {
      let total = this.store.bytes
      let keepFrom = Math.max(this.firstOffset, this.store.firstOffset ?? this.nextOffset)
      for (const batch of this.store.batches()) {
        const consumed = policy.consumedBefore !== null && batch.endOffset <= policy.consumedBefore
        const expired = policy.maxAgeMs !== null && batch.lastTimestamp < policy.now - policy.maxAgeMs
        const overSize = policy.maxBytes !== null && total > policy.maxBytes
        if (!consumed && !expired && !overSize) break
        keepFrom = batch.endOffset
        total -= batch.bytes
      }
      if (keepFrom > this.firstOffset) {
        this.store.dropBefore(keepFrom)
        this.firstOffset = keepFrom
      }
    }
    return { deletedMessages: this.firstOffset - before, startOffset: this.firstOffset }
  }

  sync(): Promise<void> {
    return Promise.resolve()
  }

  async close(): Promise<void> {
    this.closed = true
    await this.spilling?.catch(() => undefined)
    if (this.spill !== null) {
      await this.spill.close()
      await (this.options.fs ?? nodeFileSystem).removeTree(this.options.spillDir!())
    }
  }
}
