import type { Clock } from '../../core/clock.ts'
import { Heap } from '../../core/heap.ts'
import { Ordering } from '../../core/types.ts'
import type { PartitionLog } from '../log/partition-log.ts'
import type { LogRecord } from '../log/record.ts'
import type { DispatchTimer } from './dispatch-timer.ts'
import { EntryState, leaseKey, type Entry } from './lease.ts'
import type { PartitionState, SubscriptionState } from './subscription-state.ts'

/** What a window needs of the dispatcher it reads for. */
export interface WindowHost {
  readonly clock: Clock
  isClosed(): boolean
  /** Reading ahead for no consumer would only hold memory. */
  hasConsumers(): boolean
  /** An entry became ready: waiting lease calls may take it. */
  readied(): void
  /** A read from the log failed: the next lease call reports it. */
  readFailed(err: unknown): void
}

/**
 * One partition's part of a subscription: the log read ahead of the
 * acknowledged floor into a bounded window of entries, and their chains.
 * An entry is eligible when it heads its chain (or has none), and ready
 * once its backoff has passed too; only ready entries are leased.
 *
 * The window is bounded (`maxWindow` messages and `maxWindowBytes`, so
 * memory stays bounded whatever the backlog): if one key falls far behind,
 * the window fills with its later messages' neighbours and reading ahead
 * pauses until acknowledgements make room.
 */
export class PartitionWindow {
  readonly state: PartitionState
  /** Next offset to read from the log. */
  cursor: number
  readonly entries = new Map<number, Entry>()
  readonly chains = new Map<string, Entry[]>()
  readonly ready = new Heap<Entry>((a, b) => a.offset < b.offset)
  /** Offsets reserved by a drop-oldest eviction that are not in the window: not read into it while reserved. */
  readonly evicting = new Set<number>()
  /** Delayed messages coming due join their chains through this, in the order they came due (reads may finish in any order). */
  private loading: Promise<void> = Promise.resolve()
  private reading = false
  /** Payload bytes held by the window (the records stay in memory while they are in it). */
  private bytes = 0

  constructor(
    readonly index: number,
    /** Read for its ordering at each message, not once. */
    private readonly subscription: SubscriptionState,
    readonly log: PartitionLog,
    private readonly timer: DispatchTimer,
    private readonly host: WindowHost,
    private readonly maxWindow: number,
    private readonly maxWindowBytes: number,
  ) {
    this.state = subscription.partitions[index]!
    this.cursor = this.state.acks.floor
  }

  /** Reads ahead from the log, if there is room and someone to lease what is read. */
  fill(): void {
    if (this.reading || this.host.isClosed() || !this.host.hasConsumers()) return
    this.cursor = this.state.acks.nextUnacked(this.cursor)
    const room = this.maxWindow - this.entries.size
    // Read in batches: a read per acknowledgement would cost a disk read per message.
    if (room < Math.min(256, this.maxWindow / 4) && this.entries.size > 0) return
    if (this.bytes >= this.maxWindowBytes && this.entries.size > 0) return
    if (this.cursor >= this.log.endOffset) return
    this.reading = true
    // Bound the read by bytes too: a thousand 1 MiB messages are not a read-ahead.
    const meanBytes = this.log.bytes / Math.max(1, this.log.endOffset - this.log.startOffset)
    const byBytes = Math.max(1, Math.floor((this.maxWindowBytes - this.bytes) / (meanBytes + 256)))
    this.log.read(this.cursor, Math.min(room, 1000, byBytes)).then(
      (records) => {
        this.reading = false
        if (this.host.isClosed()) return
        const now = this.host.clock.now()
        for (const record of records) {
          if (record.offset < this.cursor) continue
          this.cursor = record.offset + 1
          if (this.state.acks.has(record.offset)) {
            // Skip to the next gap within this read: reading again from there would read the same records again
            // for every acknowledged one met (many, after a restart with delayed messages among consumed ones).
            this.cursor = this.state.acks.nextUnacked(this.cursor)
            continue
          }
          if (record.deliverAt > now) {
            this.timer.delay(this.index, record.offset, record.deliverAt)
            continue
          }
          this.add(record)
        }
        if (records.length > 0) this.fill()
      },
      (err: unknown) => {
        this.reading = false
        this.host.readFailed(err)
      },
    )
  }

  /**
   * A delayed message came due: it joins its chain at the tail (its order
   * among its key is the order it became visible; messages due at the same
   * time become visible in offset order).
   */
  loadDue(offset: number): void {
    const read = this.log.read(offset, 1)
    read.catch(() => undefined) // handled below, in turn; not an unhandled rejection meanwhile
    this.loading = this.loading
      .then(
        () => read,
        () => read,
      )
      .then(
        ([record]) => {
          if (this.host.isClosed() || record?.offset !== offset || this.state.acks.has(offset)) return
          this.add(record)
        },
        (err: unknown) => this.host.readFailed(err),
      )
  }

  /** Whether the entry heads its chain (or has none). */
  heads(entry: Entry): boolean {
    return entry.chain === null || this.chains.get(entry.chain)?.[0] === entry
  }

  /** The entry heads its chain (or has none): ready now, or once its backoff has passed. */
  makeEligible(entry: Entry): void {
    if (entry.availableAt <= this.host.clock.now()) {
      this.makeReady(entry)
    } else {
      entry.state = EntryState.Waiting
      this.timer.waitForBackoff(entry)
    }
  }

  /** The eligible entry's backoff has passed (or it had none): it may be leased. */
  makeReady(entry: Entry): void {
    entry.state = EntryState.Ready
    this.ready.push(entry)
    this.host.readied()
  }

  /** Removes a finished entry (and its lease); the next of its chain becomes eligible. */
  remove(entry: Entry): void {
    entry.state = EntryState.Done
    if (entry.lease !== null) {
      entry.lease.consumer.leases.delete(leaseKey(entry.partition, entry.offset))
      entry.lease = null
    }
    if (this.entries.delete(entry.offset)) this.bytes -= entryBytes(entry.record)
    this.state.attempts.delete(entry.offset)
    if (entry.chain !== null) {
      const chain = this.chains.get(entry.chain)!
      const at = chain.indexOf(entry)
      chain.splice(at, 1)
      if (chain.length === 0) this.chains.delete(entry.chain)
      // The new head may be reserved by an eviction: it then stays reserved, and its chain waits for it.
      else if (at === 0 && chain[0]!.state === EntryState.Blocked) this.makeEligible(chain[0]!)
    }
    this.fill()
  }

  /** Retention deleted everything below `startOffset`: it leaves the window, and its delivery counts are forgotten. */
  forgetBelow(startOffset: number): void {
    for (const entry of [...this.entries.values()]) if (entry.offset < startOffset) this.remove(entry)
    for (const offset of [...this.state.attempts.keys()]) if (offset < startOffset) this.state.attempts.delete(offset)
    this.cursor = Math.max(this.cursor, startOffset)
  }

  private add(record: LogRecord): void {
    if (this.entries.has(record.offset) || this.evicting.has(record.offset)) return
    const entry: Entry = {
      partition: this.index,
      offset: record.offset,
      record,
      chain: this.chainOf(record),
      attempts: this.state.attempts.get(record.offset) ?? 0,
      availableAt: this.host.clock.now(),
      state: EntryState.Blocked,
      lease: null,
      preAcked: false,
    }
    this.entries.set(record.offset, entry)
    this.bytes += entryBytes(record)
    if (entry.chain === null) {
      this.makeEligible(entry)
      return
    }
    let chain = this.chains.get(entry.chain)
    if (chain === undefined) {
      chain = []
      this.chains.set(entry.chain, chain)
    }
    chain.push(entry)
    if (chain.length === 1) this.makeEligible(entry)
  }

  /** One chain per key (`key`), or one per partition (`partition`, `global`); null: unordered. */
  private chainOf(record: LogRecord): string | null {
    switch (this.subscription.ordering) {
      case Ordering.None:
        return null
      case Ordering.Key:
        return record.key
      case Ordering.Partition:
      case Ordering.Global:
        return ''
    }
  }
}

/** What an entry costs in memory, roughly: its payload plus the objects around it. */
function entryBytes(record: LogRecord): number {
  return record.payload.length + 256
}
