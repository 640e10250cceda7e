import type { Clock } from '../../core/clock.ts'
import { Heap } from '../../core/heap.ts'
import { EntryState, leasesHeld, type Entry, type Lease, type LeaseHolder } from './lease.ts'

/** What the timer reports when a time it waits for comes. */
export interface TimerEvents {
  /** A waiting entry's backoff has passed: it is ready. */
  backoffPassed(entry: Entry): void
  /** A delayed message is due: it joins the window. */
  due(partition: number, offset: number): void
  /** A live lease reached its deadline. */
  expired(lease: Lease): void
}

/**
 * The times one subscription waits for: entries' backoffs, lease deadlines,
 * and delayed messages coming due. One timer serves them all, armed for the
 * earliest: a timer per message would be set and cancelled once per delivery.
 * Heap items go stale (an entry leased again, a lease extended or settled);
 * they are skipped when they come up rather than searched for and removed.
 */
export class DispatchTimer {
  private readonly waiting = new Heap<Entry>((a, b) => a.availableAt < b.availableAt)
  private readonly deadlines = new Heap<{ lease: Lease; deadline: number }>((a, b) => a.deadline < b.deadline)
  /** Per partition, delayed messages not yet due (not in the window). */
  private readonly delayed: Heap<{ offset: number; deliverAt: number }>[]
  private timerAt = Infinity
  private cancelTimer: (() => void) | null = null
  private stopped = false

  constructor(
    private readonly clock: Clock,
    partitions: number,
    /** Whose leases the deadline heap is rebuilt from. */
    private readonly holders: ReadonlySet<LeaseHolder>,
    private readonly events: TimerEvents,
  ) {
    this.delayed = Array.from(
      { length: partitions },
      () =>
        // Due at the same time: offset order (a heap alone leaves ties in any order).
        new Heap<{ offset: number; deliverAt: number }>(
          (a, b) => a.deliverAt < b.deliverAt || (a.deliverAt === b.deliverAt && a.offset < b.offset),
        ),
    )
  }

  /** Delayed messages not yet due, over all partitions. */
  get delayedCount(): number {
    let n = 0
    for (const heap of this.delayed) n += heap.size
    return n
  }

  /** The entry (in state Waiting) becomes ready at its `availableAt`. */
  waitForBackoff(entry: Entry): void {
    this.waiting.push(entry)
    this.armTimerFor(entry.availableAt)
  }

  /** A message read before its `deliverAt`: reported due then. */
  delay(partition: number, offset: number, deliverAt: number): void {
    this.delayed[partition]!.push({ offset, deliverAt })
    this.armTimerFor(deliverAt)
  }

  /**
   * The lease expires at its `deadline` (set anew on every extension). Heap
   * items of finished or extended leases are dropped when they come up,
   * but a lease lives far shorter than its timeout: without a sweep the heap
   * would keep every message of the last ackTimeoutMs alive.
   */
  watchDeadline(lease: Lease): void {
    this.deadlines.push({ lease, deadline: lease.deadline })
    this.armTimerFor(lease.deadline)
    const live = leasesHeld(this.holders)
    if (this.deadlines.size > 2 * live + 1024) {
      this.deadlines.clear()
      for (const holder of this.holders)
        for (const l of holder.leases.values()) this.deadlines.push({ lease: l, deadline: l.deadline })
    }
  }

  /** The dispatcher closed: nothing fires any more. */
  stop(): void {
    this.stopped = true
    this.cancelTimer?.()
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
    for (const heap of this.delayed) {
      const delayed = heap.peek()
      if (delayed !== undefined) at = Math.min(at, delayed.deliverAt)
    }
    if (at === Infinity || at >= this.timerAt || this.stopped) return
    this.cancelTimer?.()
    this.timerAt = at
    this.cancelTimer = this.clock.setTimer(() => this.onTimer(), at - this.clock.now())
  }

  private onTimer(): void {
    this.cancelTimer = null
    this.timerAt = Infinity
    if (this.stopped) return
    const now = this.clock.now()
    for (let w = this.waiting.peek(); w !== undefined && w.availableAt <= now; w = this.waiting.peek()) {
      this.waiting.pop()
      if (w.state !== EntryState.Waiting) continue
      this.events.backoffPassed(w)
    }
    this.delayed.forEach((heap, partition) => {
      for (let d = heap.peek(); d !== undefined && d.deliverAt <= now; d = heap.peek()) {
        heap.pop()
        this.events.due(partition, d.offset)
      }
    })
    for (let item = this.deadlines.peek(); item !== undefined && item.deadline <= now; item = this.deadlines.peek()) {
      this.deadlines.pop()
      const lease = item.lease
      if (lease.entry.lease === lease && lease.deadline === item.deadline) this.events.expired(lease)
    }
    this.armTimer()
  }
}
