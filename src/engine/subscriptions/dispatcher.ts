// Over 500 lines, for now: one subscription's in-memory state machine (entries, leases, key chains, timers,
// eviction holds, commits) whose parts change the same entries and must stay in step. The seams to split along
// next: the lease deadlines and timer, the drop-oldest eviction holds, and the stats queries.
import { backoffDelay } from '../../core/backoff.ts'
import type { Clock } from '../../core/clock.ts'
import { asSluiceError, ErrorCode, sluiceError } from '../../core/errors.ts'
import { Heap } from '../../core/heap.ts'
import { MovingRate } from '../../core/rate.ts'
import { DeliveryGuarantee, Ordering, type ConsumerConfig, type LeasedRecord, type LeaseRef } from '../../core/types.ts'
import type { PartitionLog } from '../log/partition-log.ts'
import type { LogRecord } from '../log/record.ts'
import { depth, oldestUnackedTimestamp, peekUnacked, unackedFrom } from './backlog.ts'
import { EntryState, leaseKey, leasesHeld, toLeased } from './lease.ts'
import type { Entry, Lease, LeaseHolder } from './lease.ts'
import type { StateOp } from './state-journal.ts'
import { offsetsToRanges, type PartitionState, type SubscriptionState } from './subscription-state.ts'

/**
 * Hands out the messages of one subscription to its consumers under leases.
 *
 * Per partition, the dispatcher reads the log ahead of the acknowledged floor
 * into a bounded window of entries. An entry is eligible when its backoff has
 * passed and, under an ordering, it is the head of its chain: one chain per
 * key (`key`), or one per partition (`partition`, `global`). Only chain heads
 * are ever leased, so a key (or partition) has one message in flight, and a
 * failed message stays the head until it succeeds or is dead-lettered:
 * redeliveries go before any later message of the chain. Different chains
 * run in parallel across any number of consumers, which is what lets `key`
 * ordering scale past the partition count.
 *
 * A delayed message is not in the window until it is due; it then joins its
 * chain at the tail (its order among its key is the order it became visible;
 * messages due at the same time become visible in offset order).
 *
 * The window is bounded (`maxWindow` messages and `maxWindowBytes` per
 * partition, so memory stays bounded whatever the backlog): if one key falls far
 * behind, the window fills with its later messages' neighbours and reading
 * ahead pauses until acknowledgements make room.
 */

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
  deadLetter(
    record: LogRecord,
    partition: number,
    attempts: number,
    reason: string,
    deadLetterTopic: string,
  ): Promise<void>
}

interface PartitionQueue {
  readonly index: number
  readonly state: PartitionState
  readonly log: PartitionLog
  /** Next offset to read from the log. */
  cursor: number
  readonly window: Map<number, Entry>
  readonly chains: Map<string, Entry[]>
  readonly ready: Heap<Entry>
  readonly delayed: Heap<{ offset: number; deliverAt: number }>
  /** Delayed messages coming due join their chains through this, in the order they came due (reads may finish in any order). */
  loading: Promise<void>
  reading: boolean
  /** Offsets reserved by a drop-oldest eviction that are not in the window: not read into it while reserved. */
  readonly evicting: Set<number>
  /** Payload bytes held by the window (the records stay in memory while they are in it). */
  windowBytes: number
}

interface Leaser {
  readonly holder: LeaseHolder
  readonly max: number
  readonly resolve: (records: LeasedRecord[]) => void
  readonly reject: (err: unknown) => void
  readonly detach: () => void
}

export class Dispatcher {
  private readonly queues: PartitionQueue[]
  readonly holders = new Set<LeaseHolder>()
  private readonly waiting = new Heap<Entry>((a, b) => a.availableAt < b.availableAt)
  private readonly deadlines = new Heap<{ lease: Lease; deadline: number }>((a, b) => a.deadline < b.deadline)
  private leasers: Leaser[] = []
  private timerAt = Infinity
  private cancelTimer: (() => void) | null = null
  private wakeQueued = false
  private next = 0
  private closed = false
  private readError: unknown = null
  private readonly unsubscribes: (() => void)[] = []
  readonly counters = { acked: 0, redeliveries: 0, deadLettered: 0, dropped: 0, expiredUnread: 0 }
  /** Acknowledgements per second, a moving average over a minute. */
  readonly processingRate: MovingRate

  constructor(
    readonly state: SubscriptionState,
    private readonly host: DispatcherHost,
    private readonly maxWindow: number = 2048,
    private readonly maxWindowBytes: number = 8 * 1024 * 1024,
  ) {
    this.processingRate = new MovingRate(host.clock.now(), 60_000)
    this.queues = state.partitions.map((partitionState, index) => ({
      index,
      state: partitionState,
      log: host.logs[index]!,
      cursor: partitionState.acks.floor,
      window: new Map(),
      chains: new Map(),
      ready: new Heap<Entry>((a, b) => a.offset < b.offset),
      // Due at the same time: offset order (a heap alone leaves ties in any order).
      delayed: new Heap<{ offset: number; deliverAt: number }>(
        (a, b) => a.deliverAt < b.deliverAt || (a.deliverAt === b.deliverAt && a.offset < b.offset),
      ),
      loading: Promise.resolve(),
      reading: false,
      evicting: new Set(),
      windowBytes: 0,
    }))
    for (const q of this.queues) {
      this.unsubscribes.push(q.log.onAppend(() => this.fill(q)))
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

  private chainOf(record: LogRecord): string | null {
    switch (this.state.ordering) {
      case Ordering.None:
        return null
      case Ordering.Key:
        return record.key
      case Ordering.Partition:
      case Ordering.Global:
        return ''
    }
  }

  addHolder(holder: LeaseHolder): void {
    if (this.closed) throw sluiceError(ErrorCode.Closed, `subscription ${this.name} of topic ${this.topic} is closed`)
    this.holders.add(holder)
    for (const q of this.queues) this.fill(q)
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
    for (const leaser of this.leasers.filter((l) => l.holder === holder)) {
      this.leasers.splice(this.leasers.indexOf(leaser), 1)
      leaser.detach()
      leaser.resolve([])
    }
  }

  // --- reading the log into the window ---

  private fill(q: PartitionQueue): void {
    if (q.reading || this.closed || this.holders.size === 0) return
    q.cursor = q.state.acks.nextUnacked(q.cursor)
    const room = this.maxWindow - q.window.size
    // Read in batches: a read per acknowledgement would cost a disk read per message.
    if (room < Math.min(256, this.maxWindow / 4) && q.window.size > 0) return
    if (q.windowBytes >= this.maxWindowBytes && q.window.size > 0) return
    if (q.cursor >= q.log.endOffset) return
    q.reading = true
    // Bound the read by bytes too: a thousand 1 MiB messages are not a read-ahead.
    const meanBytes = q.log.bytes / Math.max(1, q.log.endOffset - q.log.startOffset)
    const byBytes = Math.max(1, Math.floor((this.maxWindowBytes - q.windowBytes) / (meanBytes + 256)))
    q.log.read(q.cursor, Math.min(room, 1000, byBytes)).then(
      (records) => {
        q.reading = false
        if (this.closed) return
        const now = this.now()
        for (const record of records) {
          if (record.offset < q.cursor) continue
          q.cursor = record.offset + 1
          if (q.state.acks.has(record.offset)) {
            // Skip to the next gap within this read: reading again from there would read the same records again
            // for every acknowledged one met (many, after a restart with delayed messages among consumed ones).
            q.cursor = q.state.acks.nextUnacked(q.cursor)
            continue
          }
          if (record.deliverAt > now) {
            q.delayed.push({ offset: record.offset, deliverAt: record.deliverAt })
            this.armTimerFor(record.deliverAt)
            continue
          }
          this.addEntry(q, record)
        }
        if (records.length > 0) this.fill(q)
      },
      (err: unknown) => {
        q.reading = false
        this.readError = err
        this.wake()
      },
    )
  }

  private addEntry(q: PartitionQueue, record: LogRecord): void {
    if (q.window.has(record.offset) || q.evicting.has(record.offset)) return
    const entry: Entry = {
      partition: q.index,
      offset: record.offset,
      record,
      chain: this.chainOf(record),
      attempts: q.state.attempts.get(record.offset) ?? 0,
      availableAt: this.now(),
      state: EntryState.Blocked,
      lease: null,
      preAcked: false,
    }
    q.window.set(record.offset, entry)
    q.windowBytes += entryBytes(record)
    if (entry.chain === null) {
      this.makeEligible(entry)
      return
    }
    let chain = q.chains.get(entry.chain)
    if (chain === undefined) {
      chain = []
      q.chains.set(entry.chain, chain)
    }
    chain.push(entry)
    if (chain.length === 1) this.makeEligible(entry)
  }

  /** The entry heads its chain (or has none): ready now, or once its backoff has passed. */
  private makeEligible(entry: Entry): void {
    if (entry.availableAt <= this.now()) {
      entry.state = EntryState.Ready
      this.queues[entry.partition]!.ready.push(entry)
      this.wake()
    } else {
      entry.state = EntryState.Waiting
      this.waiting.push(entry)
      this.armTimerFor(entry.availableAt)
    }
  }

  /** Removes a finished entry; the next of its chain becomes eligible. */
  private remove(entry: Entry): void {
    const q = this.queues[entry.partition]!
    entry.state = EntryState.Done
    if (entry.lease !== null) {
      entry.lease.consumer.leases.delete(leaseKey(entry.partition, entry.offset))
      entry.lease = null
    }
    if (q.window.delete(entry.offset)) q.windowBytes -= entryBytes(entry.record)
    q.state.attempts.delete(entry.offset)
    if (entry.chain !== null) {
      const chain = q.chains.get(entry.chain)!
      const at = chain.indexOf(entry)
      chain.splice(at, 1)
      if (chain.length === 0) q.chains.delete(entry.chain)
      // The new head may be reserved by an eviction: it then stays reserved, and its chain waits for it.
      else if (at === 0 && chain[0]!.state === EntryState.Blocked) this.makeEligible(chain[0]!)
    }
    this.fill(q)
  }

  /** Acknowledges a finished entry: in memory now, in the journal by the returned promise. */
  private complete(entry: Entry): Promise<void> {
    const q = this.queues[entry.partition]!
    this.remove(entry)
    q.state.acks.add(entry.offset)
    this.counters.acked++
    this.acked(1)
    return this.host.persist([
      { t: 'ack', topic: this.topic, sub: this.name, p: entry.partition, r: [entry.offset, entry.offset + 1] },
    ])
  }

  // --- leasing ---

  /** Leases up to `max` messages to `holder`, waiting until there is one (or the signal aborts). */
  lease(holder: LeaseHolder, max: number, signal: AbortSignal): Promise<LeasedRecord[]> {
    if (this.closed)
      return Promise.reject(sluiceError(ErrorCode.Closed, `subscription ${this.name} of topic ${this.topic} is closed`))
    if (this.readError !== null) {
      const err = asSluiceError(this.readError)
      this.readError = null
      return Promise.reject(err)
    }
    const taken = this.take(holder, max)
    if (taken.length > 0 || signal.aborted) return this.deliver(holder, taken)
    for (const q of this.queues) this.fill(q)
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.leasers.indexOf(leaser)
        if (at >= 0) this.leasers.splice(at, 1)
        resolve([])
      }
      const leaser: Leaser = {
        holder,
        max,
        resolve,
        reject,
        detach: () => signal.removeEventListener('abort', onAbort),
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.leasers.push(leaser)
    })
  }

  private take(holder: LeaseHolder, max: number): Entry[] {
    const taken: Entry[] = []
    const count = this.queues.length
    for (let i = 0; i < count && taken.length < max; i++) {
      const q = this.queues[(this.next + i) % count]!
      while (taken.length < max) {
        const entry = q.ready.pop()
        if (entry === undefined) break
        if (entry.state !== EntryState.Ready) continue
        if (entry.attempts >= holder.config.maxAttempts) {
          // Delivered maxAttempts times already (e.g. before a crash): no more deliveries.
          this.deadLetterEntry(entry, holder.config, 'delivered maxAttempts times without an acknowledgement')
          continue
        }
        this.grant(entry, holder)
        taken.push(entry)
      }
    }
    this.next = (this.next + 1) % count
    return taken
  }

  private grant(entry: Entry, holder: LeaseHolder): void {
    const now = this.now()
    entry.attempts++
    entry.state = EntryState.Leased
    const lease: Lease = {
      entry,
      consumer: holder,
      attempt: entry.attempts,
      grantedAt: now,
      config: holder.config,
      deadline: now + holder.config.ackTimeoutMs,
      committing: false,
    }
    entry.lease = lease
    holder.leases.set(leaseKey(entry.partition, entry.offset), lease)
    this.pushDeadline(lease)
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
        this.queues[entry.partition]!.state.acks.add(entry.offset)
        this.counters.acked++
        this.acked(1)
        const list = byPartition.get(entry.partition) ?? []
        list.push(entry.offset)
        byPartition.set(entry.partition, list)
      }
      await this.host.persist(
        [...byPartition].map(([p, offsets]) => ({
          t: 'ack',
          topic: this.topic,
          sub: this.name,
          p,
          r: offsetsToRanges(offsets),
        })),
      )
      return records
    }
    // Delivery counts are written (not fsynced) before the messages are handed out: a message that
    // crashes its consumer at once, every time, still runs out of attempts and is dead-lettered.
    const tries = new Map<number, { o: number[]; n: number[] }>()
    for (const e of entries) {
      // The state (snapshotted at close) keeps the count too, not just the journal: a clean restart must not reset it.
      this.queues[e.partition]!.state.attempts.set(e.offset, e.attempts)
      let t = tries.get(e.partition)
      if (t === undefined) {
        t = { o: [], n: [] }
        tries.set(e.partition, t)
      }
      t.o.push(e.offset)
      t.n.push(e.attempts)
    }
    await this.host
      .persistUnsynced([...tries].map(([p, t]) => ({ t: 'try', topic: this.topic, sub: this.name, p, o: t.o, n: t.n })))
      .catch(() => undefined)
    return records
  }

  private wake(): void {
    if (this.wakeQueued) return
    this.wakeQueued = true
    queueMicrotask(() => {
      this.wakeQueued = false
      while (this.leasers.length > 0) {
        const leaser = this.leasers[0]!
        if (this.readError !== null) {
          this.leasers.shift()
          leaser.detach()
          leaser.reject(asSluiceError(this.readError))
          this.readError = null
          continue
        }
        const taken = this.take(leaser.holder, leaser.max)
        if (taken.length === 0) break
        this.leasers.shift()
        leaser.detach()
        this.deliver(leaser.holder, taken).then(leaser.resolve, leaser.reject)
      }
    })
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
      if (lease.entry.preAcked) {
        this.remove(lease.entry)
        continue
      }
      this.remove(lease.entry)
      this.queues[ref.partition]!.state.acks.add(ref.offset)
      this.counters.acked++
      acked++
      const list = offsets.get(ref.partition) ?? []
      list.push(ref.offset)
      offsets.set(ref.partition, list)
    }
    if (offsets.size === 0) return Promise.resolve(results)
    this.acked(acked)
    const ops: StateOp[] = [...offsets].map(([p, list]) => ({
      t: 'ack',
      topic: this.topic,
      sub: this.name,
      p,
      r: offsetsToRanges(list),
    }))
    return this.host.persist(ops).then(() => results)
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
      this.pushDeadline(lease)
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
    const tries = new Map<number, { o: number[]; n: number[] }>()
    const unacked = new Map<number, number[]>()
    for (const lease of leases) {
      const entry = lease.entry
      const q = this.queues[entry.partition]!
      lease.consumer.leases.delete(leaseKey(entry.partition, entry.offset))
      entry.lease = null
      entry.attempts--
      if (entry.preAcked) {
        entry.preAcked = false
        if (q.state.acks.remove(entry.offset)) {
          this.counters.acked--
          pushTo(unacked, entry.partition, entry.offset)
        }
      } else {
        q.state.attempts.set(entry.offset, entry.attempts)
        const t = tries.get(entry.partition) ?? { o: [], n: [] }
        t.o.push(entry.offset)
        t.n.push(entry.attempts)
        tries.set(entry.partition, t)
      }
      entry.availableAt = this.now()
      this.makeEligible(entry)
    }
    const ops: StateOp[] = []
    for (const [p, t] of tries) ops.push({ t: 'try', topic: this.topic, sub: this.name, p, o: t.o, n: t.n })
    for (const [p, o] of unacked) ops.push({ t: 'unack', topic: this.topic, sub: this.name, p, o })
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
      this.remove(entry)
      return
    }
    lease.consumer.leases.delete(leaseKey(entry.partition, entry.offset))
    entry.lease = null
    if (entry.attempts >= lease.config.maxAttempts) {
      this.deadLetterEntry(entry, lease.config, reason)
      return
    }
    entry.availableAt = this.now() + (delayMs ?? backoffDelay(lease.config.backoff, entry.attempts))
    this.counters.redeliveries++
    this.makeEligible(entry)
  }

  private deadLetterEntry(entry: Entry, config: ConsumerConfig, reason: string): void {
    entry.state = EntryState.Dying
    if (config.deadLetter === null) {
      this.counters.dropped++
      void this.complete(entry).catch(() => undefined)
      return
    }
    const dying = this.host.deadLetter(entry.record, entry.partition, entry.attempts, reason, config.deadLetter).then(
      () => {
        if (entry.state !== EntryState.Dying) return
        this.counters.deadLettered++
        void this.complete(entry).catch(() => undefined)
      },
      () => {
        // The dead letter could not be stored (disk full?): keep the message and try again later.
        if (entry.state !== EntryState.Dying) return
        entry.availableAt = this.now() + config.backoff.maxMs
        this.makeEligible(entry)
      },
    )
    this.dying.add(dying)
    void dying.finally(() => this.dying.delete(dying))
  }

  /** Dead letters being stored: the engine waits for them before it closes, so none is stored twice. */
  readonly dying = new Set<Promise<void>>()

  // --- time ---

  /**
   * Heap items of finished or extended leases are dropped when they come up,
   * but a lease lives far shorter than its timeout: without a sweep the heap
   * would keep every message of the last ackTimeoutMs alive.
   */
  private pushDeadline(lease: Lease): void {
    this.deadlines.push({ lease, deadline: lease.deadline })
    this.armTimerFor(lease.deadline)
    const live = leasesHeld(this.holders)
    if (this.deadlines.size > 2 * live + 1024) {
      this.deadlines.clear()
      for (const holder of this.holders)
        for (const l of holder.leases.values()) this.deadlines.push({ lease: l, deadline: l.deadline })
    }
  }

  /** Makes sure the timer fires by `at` (cheap: most deadlines are later than the timer already set). */
  private armTimerFor(at: number): void {
    if (at < this.timerAt) this.armTimer()
  }

  private armTimer(): void {
    let at = Infinity
    const w = this.waiting.peek()
    if (w !== undefined) at = Math.min(at, w.availableAt)
    const d = this.deadlines.peek()
    if (d !== undefined) at = Math.min(at, d.deadline)
    for (const q of this.queues) {
      const delayed = q.delayed.peek()
      if (delayed !== undefined) at = Math.min(at, delayed.deliverAt)
    }
    if (at === Infinity || at >= this.timerAt || this.closed) return
    this.cancelTimer?.()
    this.timerAt = at
    this.cancelTimer = this.host.clock.setTimer(() => this.onTimer(), at - this.now())
  }

  private onTimer(): void {
    this.cancelTimer = null
    this.timerAt = Infinity
    if (this.closed) return
    const now = this.now()
    for (let w = this.waiting.peek(); w !== undefined && w.availableAt <= now; w = this.waiting.peek()) {
      this.waiting.pop()
      if (w.state !== EntryState.Waiting) continue
      w.state = EntryState.Ready
      this.queues[w.partition]!.ready.push(w)
      this.wake()
    }
    for (const q of this.queues) {
      for (let d = q.delayed.peek(); d !== undefined && d.deliverAt <= now; d = q.delayed.peek()) {
        q.delayed.pop()
        this.loadDelayed(q, d.offset)
      }
    }
    for (let item = this.deadlines.peek(); item !== undefined && item.deadline <= now; item = this.deadlines.peek()) {
      this.deadlines.pop()
      const lease = item.lease
      if (lease.entry.lease === lease && lease.deadline === item.deadline) this.expire(lease)
    }
    this.armTimer()
  }

  private loadDelayed(q: PartitionQueue, offset: number): void {
    const read = q.log.read(offset, 1)
    read.catch(() => undefined) // handled below, in turn; not an unhandled rejection meanwhile
    q.loading = q.loading
      .then(
        () => read,
        () => read,
      )
      .then(
        ([record]) => {
          if (this.closed || record?.offset !== offset || q.state.acks.has(offset)) return
          this.addEntry(q, record)
        },
        (err: unknown) => {
          this.readError = err
          this.wake()
        },
      )
  }

  // --- retention, stats, close ---

  private acked(count: number): void {
    this.processingRate.add(count, this.now())
    this.host.progressed(count)
  }

  /** Retention deleted everything below `startOffset` in a partition: what was unread is counted, then forgotten. */
  retentionDeleted(partition: number, startOffset: number): void {
    const q = this.queues[partition]!
    const before = q.state.acks.floor
    const unread = q.state.acks.advanceTo(startOffset)
    if (unread === 0 && before >= startOffset) return
    this.counters.expiredUnread += unread
    for (const entry of [...q.window.values()]) if (entry.offset < startOffset) this.remove(entry)
    for (const offset of [...q.state.attempts.keys()]) if (offset < startOffset) q.state.attempts.delete(offset)
    q.cursor = Math.max(q.cursor, startOffset)
    void this.host
      .persist([{ t: 'ack', topic: this.topic, sub: this.name, p: partition, r: [before, startOffset] }])
      .catch(() => undefined)
  }

  // --- drop-oldest eviction ---

  /**
   * Whether the subscription holds a message: leased (a handler may be
   * running it, or its commit being written), being dead-lettered, or
   * reserved by an eviction. drop-oldest never evicts a held message.
   */
  holds(partition: number, offset: number): boolean {
    const q = this.queues[partition]!
    if (q.evicting.has(offset)) return true
    const state = q.window.get(offset)?.state
    return state === EntryState.Leased || state === EntryState.Dying || state === EntryState.Evicting
  }

  /** Messages held (see `holds`) in the window: how many an eviction may have to pass over. */
  get heldCount(): number {
    return this.inFlight + this.dying.size
  }

  /**
   * drop-oldest chose these messages (none held): reserves those this
   * subscription has not acknowledged, so that none is leased, and their
   * chains wait, while their dead letters are written. Resolves nothing by
   * itself: `completeEviction` or `abortEviction` follows. Returns the
   * offsets reserved.
   */
  reserveEviction(partition: number, offsets: readonly number[]): number[] {
    const q = this.queues[partition]!
    const reserved: number[] = []
    for (const offset of offsets) {
      if (q.state.acks.has(offset)) continue
      if (this.holds(partition, offset)) {
        throw sluiceError(ErrorCode.Internal, `drop-oldest chose message ${partition}/${offset}, which is held`)
      }
      reserved.push(offset)
      const entry = q.window.get(offset)
      // Ready or waiting entries stay in their heaps: take and the timer pass over what is no longer in that state.
      if (entry !== undefined) entry.state = EntryState.Evicting
      else q.evicting.add(offset)
    }
    return reserved
  }

  /** The reserved messages' dead letters are stored: they are acknowledged, counted as dropped, never delivered. */
  completeEviction(partition: number, offsets: readonly number[]): Promise<void> {
    const q = this.queues[partition]!
    for (const offset of offsets) {
      q.evicting.delete(offset)
      const entry = q.window.get(offset)
      if (entry !== undefined) this.remove(entry)
      else q.state.attempts.delete(offset)
      q.state.acks.add(offset)
    }
    this.counters.dropped += offsets.length
    if (offsets.length === 0) return Promise.resolve()
    this.fill(q)
    return this.host.persist([
      { t: 'ack', topic: this.topic, sub: this.name, p: partition, r: offsetsToRanges(offsets) },
    ])
  }

  /** The dead letters could not be stored: the reserved messages are offered again, where they were. */
  abortEviction(partition: number, offsets: readonly number[]): void {
    const q = this.queues[partition]!
    let reread = Infinity
    for (const offset of offsets) {
      if (q.evicting.delete(offset)) {
        // Passed over by reading while reserved: read again from there.
        reread = Math.min(reread, offset)
        continue
      }
      const entry = q.window.get(offset)
      if (entry?.state !== EntryState.Evicting) continue
      entry.state = EntryState.Blocked
      if (entry.chain === null || q.chains.get(entry.chain)?.[0] === entry) this.makeEligible(entry)
    }
    if (reread < q.cursor) q.cursor = reread
    this.fill(q)
  }

  /** Whether a message is acknowledged. */
  isAcked(partition: number, offset: number): boolean {
    return this.queues[partition]!.state.acks.has(offset)
  }

  /** Messages of a partition at `from` and after that are stored and not acknowledged. */
  unackedFrom(partition: number, from: number): number {
    return unackedFrom(this.queues[partition]!, from)
  }

  /** Every offset below this is acknowledged, per partition. */
  floor(partition: number): number {
    return this.queues[partition]!.state.acks.floor
  }

  get inFlight(): number {
    return leasesHeld(this.holders)
  }

  get delayedCount(): number {
    let n = 0
    for (const q of this.queues) n += q.delayed.size
    return n
  }

  /** Stored messages not yet acknowledged. */
  depth(): number {
    return depth(this.queues)
  }

  /** Store time of the oldest message not yet acknowledged; null when there is none. */
  oldestUnackedTimestamp(): Promise<number | null> {
    return oldestUnackedTimestamp(this.queues)
  }

  /** Unacknowledged records from the floor on, without leasing them. */
  peek(max: number): Promise<{ partition: number; record: LogRecord }[]> {
    return peekUnacked(this.queues, max)
  }

  // --- transactions ---

  /** The live lease `ref` names, for a commit; null when it was lost. */
  leaseFor(holder: LeaseHolder, ref: LeaseRef): Lease | null {
    return this.validLease(holder, ref)
  }

  /** Keeps a lease from expiring while its transaction is written (beyond maxLeaseMs: the commit is under way). */
  hold(lease: Lease, ms: number): void {
    lease.deadline = this.now() + ms
    this.pushDeadline(lease)
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
    const q = this.queues[entry.partition]!
    if (entry.state === EntryState.Done || q.state.acks.has(entry.offset)) return
    const current = entry.lease
    if (current !== null && current !== lease) {
      current.consumer.leaseLost({ partition: entry.partition, offset: entry.offset, attempt: current.attempt })
    }
    this.remove(entry)
    q.state.acks.add(entry.offset)
    this.counters.acked++
    this.acked(1)
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
    this.pushDeadline(lease)
  }

  /** Stops dispatching: waiting lease calls fail with CLOSED. */
  close(reason: string): void {
    if (this.closed) return
    this.closed = true
    this.cancelTimer?.()
    for (const unsubscribe of this.unsubscribes) unsubscribe()
    const err = sluiceError(ErrorCode.Closed, reason)
    for (const leaser of this.leasers) {
      leaser.detach()
      leaser.reject(err)
    }
    this.leasers = []
  }
}

function pushTo(map: Map<number, number[]>, key: number, value: number): void {
  const list = map.get(key)
  if (list === undefined) map.set(key, [value])
  else list.push(value)
}

/** What an entry costs in memory, roughly: its payload plus the objects around it. */
function entryBytes(record: LogRecord): number {
  return record.payload.length + 256
}
