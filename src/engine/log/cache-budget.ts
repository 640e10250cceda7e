/**
 * One byte budget for the record caches of all an engine's partitions. Each
 * cache keeps to its own budget; this bounds them together, so that memory
 * does not grow with the number of topics and partitions. When the total is
 * over, the batches cached longest ago go first, whichever partition holds
 * them: a partition written recently is the one its consumers read.
 */
export interface BudgetedBatch {
  readonly bytes: number
  /** False once its cache has let it go (for whatever reason). */
  readonly cached: boolean
}

/** A cache under a `CacheBudget`: it adds its batches in order, and evicts its oldest when asked. */
export interface BudgetedCache {
  /** Drops `batch`, which is the cache's oldest (batches are added and dropped in order). */
  evict(batch: BudgetedBatch): void
}

interface Entry {
  readonly cache: BudgetedCache
  readonly batch: BudgetedBatch
}

export class CacheBudget {
  /** Every batch added, oldest first; those no longer cached are skipped and, now and then, swept out. */
  private entries: (Entry | undefined)[] = []
  private head = 0
  private liveBatches = 0
  private cachedBytes = 0

  /** `budgetBytes`: the most bytes all caches under this budget hold together. */
  constructor(readonly budgetBytes: number) {}

  /** Bytes cached now, by all caches together. */
  get bytes(): number {
    return this.cachedBytes
  }

  /** A cache added `batch`; batches of other caches are evicted, oldest first, until the total fits. */
  added(cache: BudgetedCache, batch: BudgetedBatch): void {
    this.entries.push({ cache, batch })
    this.liveBatches++
    this.cachedBytes += batch.bytes
    while (this.cachedBytes > this.budgetBytes && this.head < this.entries.length) {
      const entry = this.entries[this.head]!
      this.entries[this.head] = undefined
      this.head++
      if (entry.batch.cached) entry.cache.evict(entry.batch)
    }
    this.compact()
  }

  /** A cache let `batch` go (evicted, dropped by its own budget or by retention, or cleared). */
  released(batch: BudgetedBatch): void {
    this.liveBatches--
    this.cachedBytes -= batch.bytes
    this.compact()
  }

  private compact(): void {
    const held = this.entries.length - this.head
    // Entries of batches let go without eviction pile up while the budget is not reached: sweep them out.
    if (held > 1024 && held > 2 * this.liveBatches) {
      this.entries = this.entries.slice(this.head).filter((e) => e!.batch.cached)
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head)
      this.head = 0
    }
  }
}
