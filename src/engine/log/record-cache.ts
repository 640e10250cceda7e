import type { BudgetedBatch, BudgetedCache, CacheBudget } from './cache-budget.ts'
import type { LogRecord } from './record.ts'

/**
 * Recent records of one partition, in offset order, as the batches that
 * stored them. Serves the reads of consumers that keep up with producers
 * without touching the disk. Bounded by bytes: the oldest batches go first,
 * when this cache is over its own budget or all caches together are over a
 * shared `CacheBudget`.
 */
interface Chunk {
  readonly baseOffset: number
  readonly records: readonly LogRecord[]
  readonly bytes: number
  /** Bytes added to the cache before this batch, ever: the difference of two is the bytes between them. */
  readonly bytesBefore: number
  /**
   * What the shared budget holds of this batch: its size, not its records, so
   * that a batch dropped here is not kept alive by the budget's list.
   */
  readonly budgeted: { readonly bytes: number; cached: boolean }
}

export class RecordCache implements BudgetedCache {
  private chunks: Chunk[] = []
  private head = 0
  private cachedBytes = 0
  private addedBytes = 0

  /**
   * `budgetBytes`: Infinity keeps everything (a memory log's store). `shared`:
   * a budget over this and other caches, which may evict any of this one's batches.
   */
  constructor(
    private readonly budgetBytes: number,
    private readonly shared?: CacheBudget,
  ) {}

  get bytes(): number {
    return this.cachedBytes
  }

  /** The first cached offset; undefined when empty. */
  get firstOffset(): number | undefined {
    return this.chunks[this.head]?.baseOffset
  }

  /** One past the last cached offset; undefined when empty. */
  get endOffset(): number | undefined {
    const last = this.chunks[this.chunks.length - 1]
    return last === undefined || this.head >= this.chunks.length ? undefined : last.baseOffset + last.records.length
  }

  /** Adds a batch that directly follows the cached ones (the cache is cleared if it does not). */
  add(records: readonly LogRecord[], bytes: number): void {
    if (records.length === 0) return
    const baseOffset = records[0]!.offset
    if (this.endOffset !== undefined && this.endOffset !== baseOffset) this.clear()
    const chunk: Chunk = {
      baseOffset,
      records,
      bytes,
      bytesBefore: this.addedBytes,
      budgeted: { bytes, cached: true },
    }
    this.chunks.push(chunk)
    this.cachedBytes += bytes
    this.addedBytes += bytes
    while (this.cachedBytes > this.budgetBytes && this.head < this.chunks.length - 1) this.dropHead()
    this.shared?.added(this, chunk.budgeted)
    this.compact()
  }

  /** Drops `batch`, the oldest cached one, for the shared budget. */
  evict(batch: BudgetedBatch): void {
    if (this.chunks[this.head]?.budgeted !== batch)
      throw new Error('the cache budget evicts a batch that is not the oldest')
    this.dropHead()
    this.compact()
  }

  /**
   * Bytes of the cached records at `from` and after, counting the batch that
   * holds `from` whole (so never less than the exact figure). O(log batches).
   */
  bytesFrom(from: number): number {
    const first = this.firstOffset
    if (first === undefined || from <= first) return this.cachedBytes
    const end = this.endOffset!
    if (from >= end) return 0
    return this.addedBytes - this.chunks[this.chunkHolding(from)]!.bytesBefore
  }

  /** The index of the cached batch that holds `offset` (which must be cached). */
  private chunkHolding(offset: number): number {
    let lo = this.head
    let hi = this.chunks.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.chunks[mid]!.baseOffset <= offset) lo = mid
      else hi = mid - 1
    }
    return lo
  }

  /** Up to `max` records from `from`, or undefined when `from` is not cached. */
  read(from: number, max: number): LogRecord[] | undefined {
    const first = this.firstOffset
    const end = this.endOffset
    if (first === undefined || end === undefined || from < first || from >= end) return undefined
    const lo = this.chunkHolding(from)
    const out: LogRecord[] = []
    for (let c = lo; c < this.chunks.length && out.length < max; c++) {
      const chunk = this.chunks[c]!
      const start = c === lo ? from - chunk.baseOffset : 0
      for (let i = start; i < chunk.records.length && out.length < max; i++) out.push(chunk.records[i]!)
    }
    return out
  }

  /** The oldest batches, whole, up to about `maxBytes` (at least one). */
  oldestBatches(maxBytes: number): LogRecord[] {
    const out: LogRecord[] = []
    let bytes = 0
    for (let c = this.head; c < this.chunks.length && (out.length === 0 || bytes < maxBytes); c++) {
      const chunk = this.chunks[c]!
      for (const record of chunk.records) out.push(record)
      bytes += chunk.bytes
    }
    return out
  }

  /** Drops whole batches that end at or before `offset` (retention). */
  dropBefore(offset: number): void {
    while (this.head < this.chunks.length) {
      const chunk = this.chunks[this.head]!
      if (chunk.baseOffset + chunk.records.length > offset) break
      this.dropHead()
    }
    this.compact()
  }

  /** Visits batches oldest first; for retention by age or size. */
  *batches(): Generator<{ readonly endOffset: number; readonly lastTimestamp: number; readonly bytes: number }> {
    for (let c = this.head; c < this.chunks.length; c++) {
      const chunk = this.chunks[c]!
      yield {
        endOffset: chunk.baseOffset + chunk.records.length,
        lastTimestamp: chunk.records[chunk.records.length - 1]!.timestamp,
        bytes: chunk.bytes,
      }
    }
  }

  clear(): void {
    while (this.head < this.chunks.length) this.dropHead()
    this.chunks = []
    this.head = 0
    this.cachedBytes = 0
  }

  private dropHead(): void {
    const chunk = this.chunks[this.head]!
    chunk.budgeted.cached = false
    this.cachedBytes -= chunk.bytes
    this.chunks[this.head] = undefined as unknown as Chunk
    this.head++
    this.shared?.released(chunk.budgeted)
  }

  private compact(): void {
    if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
  }
}
