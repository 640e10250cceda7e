import { backoffDelay } from '../../core/backoff.ts'
import type { Clock } from '../../core/clock.ts'
import { ErrorCode, sluiceError } from '../../core/errors.ts'
import { MovingRate } from '../../core/rate.ts'
import { DeliveryGuarantee, type LeasedRecord, type LeaseRef } from '../../core/types.ts'
import type { PartitionLog } from '../log/partition-log.ts'
import type { LogRecord } from '../log/record.ts'
import { depth, oldestUnackedTimestamp, peekUnacked, unackedFrom } from './backlog.ts'
import { DeadLetters, type WriteDeadLetter } from './dead-letters.ts'
import { DispatchTimer } from './dispatch-timer.ts'
import { abortEviction, completeEviction, holds, reserveEviction } from './eviction-holds.ts'
import { EntryState, grantLease, leaseKey, leasesHeld, toLeased } from './lease.ts'
import type { Entry, Lease, LeaseHolder } from './lease.ts'
import { LeaseCalls } from './lease-calls.ts'
import { PartitionWindow } from './partition-window.ts'
import type { StateOp } from './state-journal.ts'
import { ackOps, ackRangesOp, pushOffset, pushTry, tryOps, unackOps, type DeliveryCounts } from './state-ops.ts'
import { offsetsToRanges, type SubscriptionState } from './subscription-state.ts'

/** What a dispatcher needs of the engine around it. */
export interface DispatcherHost {
  readonly clock: Clock
  readonly logs: readonly PartitionLog[]
  /** Stores state operations; resolves once they are as durable as the topic's messages. */
  persist(ops: StateOp[]): Promise<void>
  /** Writes state operations to the OS without waiting for an fsync (a process crash keeps them, power loss may not). */
  persistUnsynced(ops: StateOp[]): Promise<void>
  /** Messages were acknowledged (the backlog may have shrunk). */
  progressed(count: number): void
  /** Appends a message that ran out of attempts to the dead-letter topic. */
  readonly deadLetter: WriteDeadLetter
}

/**
 * Hands out the messages of one subscription to its consumers under leases.
 *
 * Per partition, a window (see PartitionWindow) holds the messages read
 * ahead of the acknowledged floor. Under an ordering, only the head of a
 * chain is ever leased: one chain per key (`key`), or one per partition
 * (`partition`, `global`). So a key (or partition) has one message in
 * flight, and a failed message stays the head until it succeeds or is
 * dead-lettered: redeliveries go before any later message of the chain.
 * Different chains run in parallel across any number of consumers, which is
 * what lets `key` ordering scale past the partition count.
 */
export class Dispatcher {
  private readonly windows: PartitionWindow[]
  readonly holders = new Set<LeaseHolder>()
  private readonly timer: DispatchTimer
  private readonly calls: LeaseCalls
  private readonly deadLetters: DeadLetters
  private next = 0
  private closed = false
  private readonly unsubscribes: (() => void)[] = []
  readonly counters = { acked: 0, redeliveries: 0, deadLettered: 0, dropped: 0, expiredUnread: 0 }
  /** Acknowledgements per second, a moving average over a minute. */
  readonly processingRate: MovingRate

  constructor(
    readonly state: SubscriptionState,
    private readonly host: DispatcherHost,
    maxWindow: number = 2048,
    maxWindowBytes: number = 8 * 1024 * 1024,
  ) {
    this.processingRate = new MovingRate(host.clock.now(), 60_000)
    this.calls = new LeaseCalls({
      take: (holder, max) => this.take(holder, max),
      deliver: (holder, entries) => this.deliver(holder, entries),
      readAhead: () => {
        for (const w of this.windows) w.fill()
      },
    })
    this.deadLetters = new DeadLetters({
      clock: host.clock,
      write: (...args) => host.deadLetter(...args),
      gone: (entry, how) => {
        this.counters[how]++
        this.acknowledge(entry)
        void this.host
          .persist([ackRangesOp(this.state, entry.partition, [entry.offset, entry.offset + 1])])
          .catch(() => undefined)
      },
      retry: (entry) => this.windowOf(entry).makeEligible(entry),
    })
    this.timer = new DispatchTimer(host.clock, state.partitions.length, this.holders, {
      backoffPassed: (entry) => this.windowOf(entry).makeReady(entry),
      due: (partition, offset) => this.windows[partition]!.loadDue(offset),
      expired: (lease) => this.expire(lease),
    })
    const windowHost = {
      clock: host.clock,
      isClosed: () => this.closed,
      hasConsumers: () => this.holders.size > 0,
      readied: () => this.calls.wake(),
      readFailed: (err: unknown) => this.calls.readFailed(err),
    }
    this.windows = state.partitions.map(
      (_, index) =>
        new PartitionWindow(index, state, host.logs[index]!, this.timer, windowHost, maxWindow, maxWindowBytes),
    )
    for (const w of this.windows) {
      this.unsubscribes.push(w.log.onAppend(() => w.fill()))
    }
  }

  get topic(): string {
    return this.state.topic
  }

  get name(): string {
    return this.state.name
  }

  private now(): number {
    return this.host.clock.now()
  }

  private windowOf(entry: Entry): PartitionWindow {
    return this.windows[entry.partition]!
  }

  addHolder(holder: LeaseHolder): void {
    if (this.closed) throw sluiceError(ErrorCode.Closed, `subscription ${this.name} of topic ${this.topic} is closed`)
    this.holders.add(holder)
    for (const w of this.windows) w.fill()
  }

  /**
   * A consumer leaves and its waiting lease calls end. `handed`: lease key ->
   * attempt of the messages that reached a handler unsettled: they count as failed
   * deliveries (backoff, or dead letter). Every other lease is given back
   * unstarted (its attempt not counted). Null: the consumer is gone (crashed,
   * cut off), so every lease counts as failed. A lease whose commit is being
   * written is left to the commit.
   */
  removeHolder(holder: LeaseHolder, reason: string, handed: ReadonlyMap<number, number> | null = null): void {
    this.holders.delete(holder)
    const givenBack: Lease[] = []
    for (const [key, lease] of [...holder.leases]) {
      if (lease.committing) continue
      if (handed === null || handed.get(key) === lease.attempt) this.failDelivery(lease, reason, null)
      else givenBack.push(lease)
    }
    this.giveBack(givenBack)
    this.calls.leave(holder)
  }

  // --- leasing ---

  /** Leases up to `max` messages to `holder`, waiting until there is one (or the signal aborts). */
  lease(holder: LeaseHolder, max: number, signal: AbortSignal): Promise<LeasedRecord[]> {
    if (this.closed)
      return Promise.reject(sluiceError(ErrorCode.Closed, `subscription ${this.name} of topic ${this.topic} is closed`))
    return this.calls.lease(holder, max, signal)
  }

  private take(holder: LeaseHolder, max: number): Entry[] {
    const taken: Entry[] = []
    const count = this.windows.length
    for (let i = 0; i < count && taken.length < max; i++) {
      const w = this.windows[(this.next + i) % count]!
      while (taken.length < max) {
        const entry = w.ready.pop()
        if (entry === undefined) break
        if (entry.state !== EntryState.Ready) continue
        if (entry.attempts >= holder.config.maxAttempts) {
          // Delivered maxAttempts times already (e.g. before a crash): no more deliveries.
          this.deadLetters.add(entry, holder.config, 'delivered maxAttempts times without an acknowledgement')
          continue
        }
        this.timer.watchDeadline(grantLease(entry, holder, this.now()))
        taken.push(entry)
      }
    }
    this.next = (this.next + 1) % count
    return taken
  }

  /** Turns granted entries into records; at-most-once acknowledges them (durably) before handing them out. */
  private async deliver(holder: LeaseHolder, entries: Entry[]): Promise<LeasedRecord[]> {
    const records = entries.map((entry) => toLeased(entry))
    if (entries.length === 0) return records
    if (this.state.delivery === DeliveryGuarantee.AtMostOnce) {
      // Acknowledged before the handler sees them; they stay leased (and their chains blocked) until it ends.
      const byPartition = new Map<number, number[]>()
      for (const entry of entries) {
        entry.preAcked = true
        this.windowOf(entry).state.acks.add(entry.offset)
        this.acked(1)
        pushOffset(byPartition, entry.partition, entry.offset)
      }
      await this.host.persist(ackOps(this.state, byPartition))
      return records
    }
    // Delivery counts are written (not fsynced) before the messages are handed out: a message that
    // crashes its consumer at once, every time, still runs out of attempts and is dead-lettered.
    const tries: DeliveryCounts = new Map()
    for (const e of entries) {
      // The state (snapshotted at close) keeps the count too, not just the journal: a clean restart must not reset it.
      this.windowOf(e).state.attempts.set(e.offset, e.attempts)
      pushTry(tries, e.partition, e.offset, e.attempts)
    }
    await this.host.persistUnsynced(tryOps(this.state, tries)).catch(() => undefined)
    return records
  }

  // --- acknowledgements ---

  /** The live lease `ref` names, or null (lost, stale or never granted). An overdue lease expires here. */
  private validLease(holder: LeaseHolder, ref: LeaseRef): Lease | null {
    const lease = holder.leases.get(leaseKey(ref.partition, ref.offset))
    if (lease === undefined || lease.attempt !== ref.attempt || lease.entry.lease !== lease) return null
    if (lease.deadline <= this.now()) {
      this.expire(lease)
      return null
    }
    return lease
  }

  ack(holder: LeaseHolder, refs: readonly LeaseRef[]): Promise<boolean[]> {
    const results: boolean[] = []
    let acked = 0
    const offsets = new Map<number, number[]>()
    for (const ref of refs) {
      const lease = this.validLease(holder, ref)
      results.push(lease !== null)
      if (lease === null) continue
      this.windowOf(lease.entry).remove(lease.entry)
      if (lease.entry.preAcked) continue
      this.windows[ref.partition]!.state.acks.add(ref.offset)
      acked++
      pushOffset(offsets, ref.partition, ref.offset)
    }
    if (offsets.size === 0) return Promise.resolve(results)
    this.acked(acked)
    return this.host.persist(ackOps(this.state, offsets)).then(() => results)
  }

  nack(holder: LeaseHolder, refs: readonly LeaseRef[], delayMs: number | null, reason: string): boolean[] {
    return refs.map((ref) => {
      const lease = this.validLease(holder, ref)
      if (lease === null) return false
      this.failDelivery(lease, reason, delayMs)
      return true
    })
  }

  extend(holder: LeaseHolder, refs: readonly LeaseRef[], ms: number): boolean[] {
    const now = this.now()
    return refs.map((ref) => {
      const lease = this.validLease(holder, ref)
      if (lease === null) return false
      const deadline = Math.min(now + ms, lease.grantedAt + lease.config.maxLeaseMs)
      if (deadline <= now) return false
      lease.deadline = deadline
      this.timer.watchDeadline(lease)
      return true
    })
  }

  release(holder: LeaseHolder, refs: readonly LeaseRef[]): void {
    const leases: Lease[] = []
    for (const ref of refs) {
      const lease = this.validLease(holder, ref)
      if (lease !== null && !lease.committing) leases.push(lease)
    }
    this.giveBack(leases)
  }

  /**
   * Gives leased messages back unstarted: offered again at once, the delivery
   * not counted. An at-most-once message was acknowledged when it was leased;
   * no handler saw it, so the acknowledgement is taken back (a crash before
   * that is written loses it, as at-most-once allows for what a consumer held).
   */
  private giveBack(leases: readonly Lease[]): void {
    if (leases.length === 0) return
    const tries: DeliveryCounts = new Map()
    const unacked = new Map<number, number[]>()
    for (const lease of leases) {
      const entry = lease.entry
      const w = this.windowOf(entry)
      lease.consumer.leases.delete(leaseKey(entry.partition, entry.offset))
      entry.lease = null
      entry.attempts--
      if (entry.preAcked) {
        entry.preAcked = false
        if (w.state.acks.remove(entry.offset)) {
          this.counters.acked--
          pushOffset(unacked, entry.partition, entry.offset)
        }
      } else {
        w.state.attempts.set(entry.offset, entry.attempts)
        pushTry(tries, entry.partition, entry.offset, entry.attempts)
      }
      entry.availableAt = this.now()
      w.makeEligible(entry)
    }
    const ops = [...tryOps(this.state, tries), ...unackOps(this.state, unacked)]
    if (ops.length > 0) void this.host.persistUnsynced(ops).catch(() => undefined)
  }

  private expire(lease: Lease): void {
    if (lease.committing) return
    const entry = lease.entry
    lease.consumer.leaseLost({ partition: entry.partition, offset: entry.offset, attempt: lease.attempt })
    this.failDelivery(lease, `lease expired after ${lease.config.ackTimeoutMs} ms without an acknowledgement`, null)
  }

  /** A delivery failed: offer the message again after a backoff, or dead-letter it after maxAttempts. */
  private failDelivery(lease: Lease, reason: string, delayMs: number | null): void {
    const entry = lease.entry
    if (entry.preAcked) {
      // At-most-once: never offered again.
      this.windowOf(entry).remove(entry)
      return
    }
    lease.consumer.leases.delete(leaseKey(entry.partition, entry.offset))
    entry.lease = null
    if (entry.attempts >= lease.config.maxAttempts) {
      this.deadLetters.add(entry, lease.config, reason)
      return
    }
    entry.availableAt = this.now() + (delayMs ?? backoffDelay(lease.config.backoff, entry.attempts))
    this.counters.redeliveries++
    this.windowOf(entry).makeEligible(entry)
  }

  /** Dead letters being stored: the engine waits for them before it closes, so none is stored twice. */
  get dying(): ReadonlySet<Promise<void>> {
    return this.deadLetters.pending
  }

  // --- retention, stats ---

  /** Counts acknowledgements (each already in the window's acknowledged offsets). */
  private acked(count: number): void {
    this.counters.acked += count
    this.processingRate.add(count, this.now())
    this.host.progressed(count)
  }

  /** Acknowledges a finished entry in memory: it leaves the window. */
  private acknowledge(entry: Entry): void {
    const w = this.windowOf(entry)
    w.remove(entry)
    w.state.acks.add(entry.offset)
    this.acked(1)
  }

  /** Retention deleted everything below `startOffset` in a partition: what was unread is counted, then forgotten. */
  retentionDeleted(partition: number, startOffset: number): void {
    const w = this.windows[partition]!
    const before = w.state.acks.floor
    const unread = w.state.acks.advanceTo(startOffset)
    if (unread === 0 && before >= startOffset) return
    this.counters.expiredUnread += unread
    w.forgetBelow(startOffset)
    void this.host.persist([ackRangesOp(this.state, partition, [before, startOffset])]).catch(() => undefined)
  }

  /** Whether a message is acknowledged. */
  isAcked(partition: number, offset: number): boolean {
    return this.windows[partition]!.state.acks.has(offset)
  }

  /** Messages of a partition at `from` and after that are stored and not acknowledged. */
  unackedFrom(partition: number, from: number): number {
    return unackedFrom(this.windows[partition]!, from)
  }

  /** Every offset below this is acknowledged, per partition. */
  floor(partition: number): number {
    return this.windows[partition]!.state.acks.floor
  }

  get inFlight(): number {
    return leasesHeld(this.holders)
  }

  get delayedCount(): number {
    return this.timer.delayedCount
  }

  /** Stored messages not yet acknowledged. */
  depth(): number {
    return depth(this.windows)
  }

  /** Store time of the oldest message not yet acknowledged; null when there is none. */
  oldestUnackedTimestamp(): Promise<number | null> {
    return oldestUnackedTimestamp(this.windows)
  }

  /** Unacknowledged records from the floor on, without leasing them. */
  peek(max: number): Promise<{ partition: number; record: LogRecord }[]> {
    return peekUnacked(this.windows, max)
  }

  // --- drop-oldest eviction (see eviction-holds.ts) ---

  /** Whether the subscription holds a message: drop-oldest never evicts a held message. */
  holds(partition: number, offset: number): boolean {
    return holds(this.windows[partition]!, offset)
  }

  /** Messages held (see `holds`) in the window: how many an eviction may have to pass over. */
  get heldCount(): number {
    return this.inFlight + this.dying.size
  }

  /**
   * drop-oldest chose these messages (none held): reserves those this
   * subscription has not acknowledged. Resolves nothing by itself:
   * `completeEviction` or `abortEviction` follows. Returns the offsets reserved.
   */
  reserveEviction(partition: number, offsets: readonly number[]): number[] {
    return reserveEviction(this.windows[partition]!, offsets)
  }

  /** The reserved messages' dead letters are stored: they are acknowledged, counted as dropped, never delivered. */
  completeEviction(partition: number, offsets: readonly number[]): Promise<void> {
    const w = this.windows[partition]!
    completeEviction(w, offsets)
    this.counters.dropped += offsets.length
    if (offsets.length === 0) return Promise.resolve()
    w.fill()
    return this.host.persist([ackRangesOp(this.state, partition, offsetsToRanges(offsets))])
  }

  /** The dead letters could not be stored: the reserved messages are offered again, where they were. */
  abortEviction(partition: number, offsets: readonly number[]): void {
    abortEviction(this.windows[partition]!, offsets)
  }

  // --- transactions ---

  /** The live lease `ref` names, for a commit; null when it was lost. */
  leaseFor(holder: LeaseHolder, ref: LeaseRef): Lease | null {
    return this.validLease(holder, ref)
  }

  /** Keeps a lease from expiring while its transaction is written (beyond maxLeaseMs: the commit is under way). */
  hold(lease: Lease, ms: number): void {
    lease.deadline = this.now() + ms
    this.timer.watchDeadline(lease)
  }

  /** A transaction acknowledging this lease is being written (see `Lease.committing`). */
  beginCommit(lease: Lease): void {
    lease.committing = true
  }

  /**
   * The transaction acknowledging this lease is durable: the message is done
   * (its journal record is the tx), whatever happened to the lease meanwhile.
   * Should the message be out again anyway (the journal took longer than the
   * lease was held), that delivery is cancelled: its lease is lost.
   */
  completeCommitted(lease: Lease): void {
    lease.committing = false
    const entry = lease.entry
    if (entry.state === EntryState.Done || this.windowOf(entry).state.acks.has(entry.offset)) return
    const current = entry.lease
    if (current !== null && current !== lease) {
      current.consumer.leaseLost({ partition: entry.partition, offset: entry.offset, attempt: current.attempt })
    }
    this.acknowledge(entry)
  }

  /**
   * The transaction failed before it was durable: nothing was acknowledged.
   * The lease keeps its own deadline; if its consumer left meanwhile, the
   * delivery fails now as the leaving would have failed it.
   */
  abortCommit(lease: Lease, deadline: number): void {
    lease.committing = false
    if (lease.entry.lease !== lease) return
    if (!this.holders.has(lease.consumer)) {
      this.failDelivery(lease, 'the consumer closed while its transaction was being written', null)
      return
    }
    lease.deadline = Math.max(this.now(), deadline)
    this.timer.watchDeadline(lease)
  }

  /** Stops dispatching: waiting lease calls fail with CLOSED. */
  close(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.timer.stop()
    for (const unsubscribe of this.unsubscribes) unsubscribe()
    this.calls.close(sluiceError(ErrorCode.Closed, reason))
  }
}
