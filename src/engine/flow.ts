import type { Clock } from '../core/clock.ts'
import { ErrorCode, QueueFullError, RateLimitedError, SluiceError, sluiceError } from '../core/errors.ts'
import { limits } from '../core/limits.ts'
import { MovingRate } from '../core/rate.ts'
import { SlidingWindow } from '../core/sliding-window.ts'
import { OnLimit, Overflow, type TopicInfo } from '../core/types.ts'

/**
 * A topic's flow control on the publishing side: the rate limit (a sliding
 * window per topic or per producer) and the backlog bound (reject, block or
 * drop the oldest), plus the counters and rates that stats report.
 *
 * An append is admitted before it is stored (`tryAdmit`, else `admit`),
 * which reserves its room until `release`, so that concurrent publishes
 * cannot together overshoot the bound. A publish waits (for room or a rate
 * slot) at most its `timeoutMs` in all, from when it arrived.
 */

export interface Backlog {
  readonly messages: number
  readonly bytes: number
}

export interface FlowHooks {
  /**
   * Messages and bytes retained that some subscription has not acknowledged
   * (or all, without subscriptions). `exact`: count messages acknowledged out
   * of order as gone (dearer); else an upper bound. Bytes only `withBytes`.
   */
  backlog(exact: boolean, withBytes: boolean): Backlog
  /**
   * Evicts the `count` oldest backlog messages that no consumer holds (a
   * message in flight is never evicted); resolves with how many were evicted.
   */
  evictOldest(count: number): Promise<number>
}

export interface AdmitOptions {
  readonly producerId?: string
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  /** Called (at most once) when the append starts waiting. */
  readonly onWait?: () => void
}

/** What a publish that waited too long waited for: `details.waitedFor` of its TIMEOUT, so it is not retried. */
export type WaitedFor = 'room' | 'rate limit'

interface Waiter {
  readonly messages: number
  readonly bytes: number
  readonly admit: () => void
}

export class TopicFlow {
  /** Since start: messages accepted; refusals (QUEUE_FULL, RATE_LIMITED, waits timed out), each attempt; evicted by drop-oldest. */
  published = 0
  rejected = 0
  dropped = 0
  /** Messages accepted per second. */
  readonly publishRate: MovingRate
  /** Messages leaving the backlog (acknowledged by every subscription), for retryAfterMs. */
  readonly drainRate: MovingRate
  private pendingMessages = 0
  private pendingBytes = 0
  private readonly windows = new Map<string, SlidingWindow>()
  /** Publishes blocked for room, first come first served. */
  private waiters: Waiter[] = []
  /** Publishes waiting for a rate slot take turns, so a large batch is not starved by small ones. */
  private rateQueue: Promise<void> = Promise.resolve()
  private rateQueued = 0
  /** drop-oldest evictions take turns: two at once would evict the same messages. */
  private evictions: Promise<void> = Promise.resolve()
  /** Ends every wait in progress, for close. */
  private readonly endWaits = new Set<(err: SluiceError) => void>()
  private closedWith: SluiceError | null = null
  /** An upper bound of backlog plus reservations: the last measurement, plus what was admitted since. */
  private bound: { messages: number; bytes: number; admissions: number } | null = null

  constructor(
    private info: TopicInfo,
    private readonly clock: Clock,
    private readonly hooks: FlowHooks,
  ) {
    this.publishRate = new MovingRate(clock.now(), 60_000)
    this.drainRate = new MovingRate(clock.now(), 60_000)
  }

  /** Whether publishes to this topic need admission at all. */
  get active(): boolean {
    return this.info.rateLimit !== null || this.info.limits.maxMessages !== null || this.info.limits.maxBytes !== null
  }

  /** Whether admission needs the appends' stored bytes (a byte bound); else callers may pass 0. */
  get countsBytes(): boolean {
    return this.info.limits.maxBytes !== null
  }

  /**
   * The fast path: when nothing has to wait, evict or be refused, admits
   * (reserving room) at once and returns true; else false, and `admit`
   * decides. `now` is the caller's clock reading (one per publish).
   */
  tryAdmit(messages: number, bytes: number, producerId: string | undefined, now: number): boolean {
    if (this.closedWith !== null || this.waiters.length > 0 || this.rateQueued > 0) return false
    const window = this.window(producerId)
    if (window !== null && window.availableAt(messages, now) > now) return false
    if (!this.room(messages, bytes).fits) return false
    window?.take(messages, now)
    this.reserve(messages, bytes)
    return true
  }

  /**
   * Lets an append of `messages` (`bytes` as stored) in, or refuses it as the
   * topic's limits say. Once admitted, its room is reserved until `release`.
   */
  async admit(messages: number, bytes: number, options: AdmitOptions): Promise<void> {
    if (this.closedWith !== null) throw this.closedWith
    const deadline = this.clock.now() + (options.timeoutMs ?? limits.defaultPublishWaitMs)
    let waiting = false
    const wait: AdmitOptions = {
      ...options,
      onWait: () => {
        if (waiting) return
        waiting = true
        options.onWait?.()
      },
    }
    const slot = await this.waitForRate(messages, wait, deadline)
    try {
      await this.waitForRoom(messages, bytes, wait, deadline)
    } catch (err) {
      // Not stored: its rate slot goes back.
      if (slot !== null) slot.window.give(messages, slot.at)
      throw err
    }
  }

  /** An admitted append settled (stored or failed): its reservation ends, and a blocked publish may fit. */
  release(messages: number, bytes: number): void {
    this.pendingMessages -= messages
    this.pendingBytes -= bytes
    if (this.waiters.length > 0) this.wake()
  }

  /** Counts a stored append. */
  stored(messages: number, now = this.clock.now()): void {
    this.published += messages
    this.publishRate.add(messages, now)
  }

  /** Messages left the backlog (acknowledged by every subscription): blocked publishes may fit now. */
  drained(messages: number): void {
    if (messages > 0) this.drainRate.add(messages, this.clock.now())
    this.wake()
  }

  /** The backlog may have shrunk some other way (retention, a subscription deleted): blocked publishes may fit now. */
  roomMayHaveAppeared(): void {
    this.wake()
  }

  /** Ends every wait with `error` (the topic was deleted or the engine closed); later admits fail with it too. */
  close(error: SluiceError): void {
    this.closedWith = error
    for (const end of [...this.endWaits]) end(error)
  }

  /** The topic's settings changed (it was recreated): new windows, same counters. */
  reconfigure(info: TopicInfo): void {
    this.info = info
    this.windows.clear()
    this.bound = null
  }

  // --- rate limit ---

  private window(producerId: string | undefined): SlidingWindow | null {
    const limit = this.info.rateLimit
    if (limit === null) return null
    const key = limit.per === 'producer' ? (producerId ?? '') : ''
    let window = this.windows.get(key)
    if (window === undefined) {
      window = new SlidingWindow(limit.perSecond, limit.burst)
      this.windows.set(key, window)
    }
    return window
  }

  /** Takes a rate slot, waiting in turn if the limit says wait; resolves with where it was taken (for a refund). */
  private async waitForRate(
    messages: number,
    options: AdmitOptions,
    deadline: number,
  ): Promise<{ window: SlidingWindow; at: number } | null> {
    const window = this.window(options.producerId)
    if (window === null) return null
    const limit = this.info.rateLimit!
    const what = `the rate limit of topic ${JSON.stringify(this.info.name)}`
    if (messages > window.capacity) {
      this.rejected += messages
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `a batch of ${messages} messages can never fit topic ${this.info.name}'s rate limit of ${window.capacity} per second; send smaller batches`,
      )
    }
    if (this.rateQueued > 0) options.onWait?.()
    this.rateQueued++
    const turn = this.rateQueue.then(async () => {
      if (this.closedWith !== null) throw this.closedWith
      if (options.signal?.aborted === true) throw abortedWhileWaiting(what)
      let now = this.clock.now()
      const at = window.availableAt(messages, now)
      if (at > now) {
        if (limit.onLimit === OnLimit.Reject) {
          this.rejected += messages
          throw new RateLimitedError(
            `topic ${JSON.stringify(this.info.name)} accepts ${limit.perSecond} messages per second${limit.burst > 0 ? ` (+${limit.burst} burst)` : ''}; nothing was stored, retry in ${Math.ceil(at - now)} ms`,
            Math.ceil(at - now),
            { details: { topic: this.info.name, perSecond: limit.perSecond } },
          )
        }
        await this.sleepUntil(at, messages, options, deadline, what)
        now = this.clock.now()
      }
      window.take(messages, now)
      return now
    })
    this.rateQueue = turn.then(
      () => undefined,
      () => undefined,
    )
    try {
      return { window, at: await untilAborted(turn, options.signal, what) }
    } finally {
      this.rateQueued--
    }
  }

  /** Sleeps until `at` for a rate slot, or fails now if that is past the deadline. */
  private sleepUntil(
    at: number,
    messages: number,
    options: AdmitOptions,
    deadline: number,
    what: string,
  ): Promise<void> {
    if (at > deadline) {
      this.rejected += messages
      return Promise.reject(this.timedOut(`${what} would delay this publish past its timeoutMs`, options, 'rate limit'))
    }
    if (options.signal?.aborted === true) return Promise.reject(abortedWhileWaiting(what))
    return new Promise((resolve, reject) => {
      const settle = (err?: SluiceError): void => {
        cancel()
        this.endWaits.delete(settle)
        options.signal?.removeEventListener('abort', onAbort)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onAbort = (): void => settle(abortedWhileWaiting(what))
      const cancel = this.clock.setTimer(() => settle(), at - this.clock.now(), true)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.endWaits.add(settle)
      options.onWait?.()
    })
  }

  // --- backlog bound ---

  /**
   * Whether `messages` more fit, counting reservations; `excess`: how many
   * messages would have to go. The cheap count first, the exact one only
   * when the cheap one says no.
   */
  private room(messages: number, bytes: number): { fits: boolean; excess: number } {
    const { maxMessages, maxBytes } = this.info.limits
    if (maxMessages === null && maxBytes === null) return { fits: true, excess: 0 }
    // The backlog only shrinks between measurements except by what was admitted since: the last
    // measurement plus that is an upper bound, and while it fits, there is no need to measure again.
    const bound = this.bound
    if (
      bound !== null &&
      bound.admissions < 256 &&
      (maxMessages === null || bound.messages + messages <= maxMessages) &&
      (maxBytes === null || bound.bytes + bytes <= maxBytes)
    ) {
      return { fits: true, excess: 0 }
    }
    const backlog = this.hooks.backlog(false, maxBytes !== null)
    this.bound = {
      messages: backlog.messages + this.pendingMessages,
      bytes: backlog.bytes + this.pendingBytes,
      admissions: 0,
    }
    let room = this.measure(backlog, messages, bytes)
    if (!room.fits && maxMessages !== null)
      room = this.measure(this.hooks.backlog(true, maxBytes !== null), messages, bytes)
    return room
  }

  private measure(backlog: Backlog, messages: number, bytes: number): { fits: boolean; excess: number } {
    const { maxMessages, maxBytes } = this.info.limits
    const overMessages = maxMessages === null ? 0 : backlog.messages + this.pendingMessages + messages - maxMessages
    const overBytes = maxBytes === null ? 0 : backlog.bytes + this.pendingBytes + bytes - maxBytes
    const meanBytes = messages === 0 ? 0 : bytes / messages
    // Messages to make room for: enough to cover whichever bound is exceeded more.
    const excess = Math.max(overMessages, meanBytes === 0 || overBytes <= 0 ? 0 : Math.ceil(overBytes / meanBytes))
    return { fits: overMessages <= 0 && overBytes <= 0, excess: Math.max(0, excess) }
  }

  private retryAfterMs(excess: number): number {
    const perSecond = this.drainRate.perSecond(this.clock.now())
    if (perSecond <= 0) return 1000
    return Math.min(60_000, Math.max(10, Math.ceil((excess / perSecond) * 1000)))
  }

  private async waitForRoom(messages: number, bytes: number, options: AdmitOptions, deadline: number): Promise<void> {
    const { maxMessages, maxBytes, overflow } = this.info.limits
    if (maxMessages === null && maxBytes === null) {
      this.reserve(messages, bytes)
      return
    }
    if ((maxMessages !== null && messages > maxMessages) || (maxBytes !== null && bytes > maxBytes)) {
      this.rejected += messages
      // Waiting or retrying can never help this one: it is the caller's to split, not a full queue.
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `a batch of ${messages} messages (${bytes} bytes) is larger than topic ${this.info.name}'s whole backlog limit; send smaller batches`,
        { details: { topic: this.info.name, maxMessages, maxBytes } },
      )
    }
    const room = this.room(messages, bytes)
    if (room.fits && this.waiters.length === 0) {
      this.reserve(messages, bytes)
      return
    }
    switch (overflow) {
      case Overflow.Reject: {
        this.rejected += messages
        const retryAfterMs = this.retryAfterMs(room.excess)
        throw new QueueFullError(
          `topic ${JSON.stringify(this.info.name)} is full (backlog limit ${[maxMessages === null ? '' : `${maxMessages} messages`, maxBytes === null ? '' : `${maxBytes} bytes`].filter((x) => x !== '').join(', ')}); nothing was stored. Retry in about ${retryAfterMs} ms, consume faster, or raise the limit`,
          retryAfterMs,
          { details: { topic: this.info.name, maxMessages, maxBytes } },
        )
      }
      case Overflow.DropOldest:
        return this.evictForRoom(messages, bytes)
      case Overflow.Block:
        return this.blockForRoom(messages, bytes, options, deadline)
    }
  }

  /** drop-oldest: evicts, one eviction at a time, until the append fits; then reserves its room. */
  private evictForRoom(messages: number, bytes: number): Promise<void> {
    const turn = this.evictions.then(async () => {
      let room = this.room(messages, bytes)
      while (!room.fits) {
        const evicted = await this.hooks.evictOldest(room.excess)
        this.dropped += evicted
        if (evicted === 0) break
        room = this.room(messages, bytes)
      }
      if (!room.fits) {
        this.rejected += messages
        throw new QueueFullError(
          `topic ${JSON.stringify(this.info.name)} is full of messages that drop-oldest does not evict (in flight to consumers, or publishes still being stored); nothing was stored, retry shortly`,
          100,
        )
      }
      this.reserve(messages, bytes)
    })
    this.evictions = turn.catch(() => undefined)
    return turn
  }

  /** block: waits, first come first served, until the append fits (then it is reserved), the deadline, or an abort. */
  private blockForRoom(messages: number, bytes: number, options: AdmitOptions, deadline: number): Promise<void> {
    if (options.signal?.aborted === true) return Promise.reject(this.abortedForRoom())
    return new Promise<void>((resolve, reject) => {
      const settle = (err?: SluiceError): void => {
        cancelTimer()
        this.endWaits.delete(settle)
        options.signal?.removeEventListener('abort', onAbort)
        this.waiters = this.waiters.filter((w) => w !== waiter)
        if (err === undefined) {
          resolve()
          return
        }
        reject(err)
        // It may have been first in line: those behind it may fit.
        this.wake()
      }
      const waiter: Waiter = { messages, bytes, admit: () => settle() }
      const cancelTimer = this.clock.setTimer(
        () => {
          this.rejected += messages
          settle(this.timedOut(`topic ${JSON.stringify(this.info.name)} stayed full`, options, 'room'))
        },
        deadline - this.clock.now(),
        true,
      )
      const onAbort = (): void => settle(this.abortedForRoom())
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.endWaits.add(settle)
      this.waiters.push(waiter)
      this.wake()
      if (this.waiters.includes(waiter)) options.onWait?.()
    })
  }

  private reserve(messages: number, bytes: number): void {
    this.pendingMessages += messages
    this.pendingBytes += bytes
    if (this.bound !== null) {
      this.bound.messages += messages
      this.bound.bytes += bytes
      this.bound.admissions++
    }
  }

  /** The backlog may have grown other than by admissions (a subscription starting from the earliest): measure anew. */
  forgetBound(): void {
    this.bound = null
  }

  /** Lets blocked publishes in, oldest first, while there is room; each is reserved as it goes in. */
  private wake(): void {
    while (this.waiters.length > 0) {
      const first = this.waiters[0]!
      if (!this.room(first.messages, first.bytes).fits) return
      this.reserve(first.messages, first.bytes)
      first.admit()
    }
  }

  private timedOut(what: string, options: AdmitOptions, waitedFor: WaitedFor): SluiceError {
    const timeoutMs = options.timeoutMs ?? limits.defaultPublishWaitMs
    return sluiceError(ErrorCode.Timeout, `${what} for its timeoutMs of ${timeoutMs} ms; nothing was stored`, {
      details: { topic: this.info.name, timeoutMs, waitedFor },
    })
  }

  private abortedForRoom(): SluiceError {
    return sluiceError(
      ErrorCode.Aborted,
      `publish to ${this.info.name} aborted while waiting for room; nothing was stored`,
    )
  }
}

function abortedWhileWaiting(what: string): SluiceError {
  return sluiceError(ErrorCode.Aborted, `publish aborted while waiting for ${what}; nothing was stored`)
}

/** Waits for `work`, or rejects with ABORTED as soon as `signal` aborts (the work then notices the abort itself). */
function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined, what: string): Promise<T> {
  if (signal === undefined) return work
  if (signal.aborted) {
    work.catch(() => undefined)
    return Promise.reject(abortedWhileWaiting(what))
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortedWhileWaiting(what))
    signal.addEventListener('abort', onAbort, { once: true })
    work.finally(() => signal.removeEventListener('abort', onAbort)).then(resolve, reject)
  })
}
