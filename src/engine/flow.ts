import type { Clock } from '../core/clock.ts'
import { ErrorCode, QueueFullError, RateLimitedError, SluiceError, sluiceError } from '../core/errors.ts'
import { MovingRate } from '../core/rate.ts'
import { SlidingWindow } from '../core/sliding-window.ts'
import { limits } from '../core/limits.ts'
import { OnLimit, Overflow, type TopicInfo } from '../core/types.ts'

/**
 * A topic's flow control on the publishing side: the rate limit (a sliding
 * window per topic or per producer) and the backlog bound (reject, block or
 * drop the oldest), plus the counters and rates that stats report.
 *
 * `admit` runs before an append is stored. It reserves the append's room
 * until the append settles, so that concurrent publishes cannot together
 * overshoot the bound.
 */

export interface Backlog {
  readonly messages: number
  readonly bytes: number
}

export interface FlowHooks {
  /** Messages and bytes retained that some subscription has not acknowledged (or all, without subscriptions). */
  backlog(): Backlog
  /** Evicts the `count` oldest backlog messages; resolves with how many were evicted. */
  evictOldest(count: number): Promise<number>
}

export interface AdmitOptions {
  readonly producerId?: string
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  readonly onWait?: () => void
}

interface Waiter {
  readonly messages: number
  readonly bytes: number
  readonly resolve: () => void
  readonly reject: (err: SluiceError) => void
}

export class TopicFlow {
  /** Messages accepted, rejected (backlog full or rate limited) and dropped (evicted by drop-oldest), since start. */
  published = 0
  rejected = 0
  dropped = 0
  readonly publishRate: MovingRate
  /** Messages leaving the backlog (acknowledged by every subscription), for retryAfterMs. */
  readonly drainRate: MovingRate
  private pendingMessages = 0
  private pendingBytes = 0
  private readonly windows = new Map<string, SlidingWindow>()
  private waiters: Waiter[] = []
  private rateQueue: Promise<void> = Promise.resolve()
  /** Publishes in or queued for the rate limiter's turn. */
  private rateQueued = 0
  /** Ends every wait in progress (blocked publishes and rate-limit delays), for close. */
  private readonly endWaits = new Set<(err: SluiceError) => void>()
  private closedWith: SluiceError | null = null

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
   * The fast path of `admit`: when nothing has to wait, evict or be refused,
   * admits (reserving room) at once and returns true; else false, and
   * `admit` decides.
   */
  tryAdmit(messages: number, bytes: number, producerId: string | undefined): boolean {
    if (this.closedWith !== null || this.waiters.length > 0 || this.rateQueued > 0) return false
    const window = this.window(producerId)
    const now = window === null ? 0 : this.clock.now()
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
    await this.waitForRate(messages, options)
    // Reserved by waitForRoom: at once when there is room, or by wake() when a blocked publish gets in.
    await this.waitForRoom(messages, bytes, options)
  }

  /** An admitted append settled (stored or failed): its reservation ends. */
  release(messages: number, bytes: number): void {
    this.pendingMessages -= messages
    this.pendingBytes -= bytes
  }

  /** Counts a stored append. */
  stored(messages: number): void {
    this.published += messages
    this.publishRate.add(messages, this.clock.now())
  }

  /** Messages left the backlog (acknowledged by every subscription, or retention): blocked publishes may fit now. */
  drained(messages: number): void {
    if (messages > 0) this.drainRate.add(messages, this.clock.now())
    this.wake()
  }

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

  private async waitForRate(messages: number, options: AdmitOptions): Promise<void> {
    const window = this.window(options.producerId)
    if (window === null) return
    const limit = this.info.rateLimit!
    if (messages > window.capacity) {
      this.rejected += messages
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `a batch of ${messages} messages can never fit topic ${this.info.name}'s rate limit of ${window.capacity} per second; send smaller batches`,
      )
    }
    // Waiting publishes queue in order, so a large batch is not starved by small ones.
    if (this.rateQueued > 0) options.onWait?.()
    this.rateQueued++
    const turn = this.rateQueue.then(async () => {
      if (this.closedWith !== null) throw this.closedWith
      if (options.signal?.aborted === true) throw abortedWhileWaiting(`the rate limit of topic ${this.info.name}`)
      const now = this.clock.now()
      const at = window.availableAt(messages, now)
      if (at > now) {
        if (limit.onLimit === OnLimit.Reject) {
          this.rejected += messages
          throw new RateLimitedError(
            `topic ${JSON.stringify(this.info.name)} accepts ${limit.perSecond} messages per second${limit.burst > 0 ? ` (+${limit.burst} burst)` : ''}; retry in ${Math.ceil(at - now)} ms`,
            Math.ceil(at - now),
            { details: { topic: this.info.name, perSecond: limit.perSecond } },
          )
        }
        await this.sleep(at - now, messages, options, `the rate limit of topic ${this.info.name}`)
      }
      window.take(messages, this.clock.now())
    })
    this.rateQueue = turn.then(
      () => undefined,
      () => undefined,
    )
    try {
      await untilAborted(turn, options.signal, `the rate limit of topic ${this.info.name}`)
    } finally {
      this.rateQueued--
    }
  }

  private room(messages: number, bytes: number): { fits: boolean; excess: number } {
    const { maxMessages, maxBytes } = this.info.limits
    if (maxMessages === null && maxBytes === null) return { fits: true, excess: 0 }
    const backlog = this.hooks.backlog()
    const overMessages = maxMessages === null ? 0 : backlog.messages + this.pendingMessages + messages - maxMessages
    const meanBytes = messages === 0 ? 0 : bytes / messages
    const overBytes = maxBytes === null ? 0 : backlog.bytes + this.pendingBytes + bytes - maxBytes
    // Messages to make room for: enough to cover whichever bound is exceeded more.
    const excess = Math.max(overMessages, meanBytes === 0 ? 0 : Math.ceil(overBytes / meanBytes))
    return { fits: overMessages <= 0 && overBytes <= 0, excess: Math.max(0, excess) }
  }

  private retryAfterMs(excess: number): number {
    const perSecond = this.drainRate.perSecond(this.clock.now())
    if (perSecond <= 0) return 1000
    return Math.min(60_000, Math.max(10, Math.ceil((excess / perSecond) * 1000)))
  }

  private async waitForRoom(messages: number, bytes: number, options: AdmitOptions): Promise<void> {
    const { maxMessages, maxBytes, overflow } = this.info.limits
    if (maxMessages === null && maxBytes === null) {
      this.reserve(messages, bytes)
      return
    }
    if ((maxMessages !== null && messages > maxMessages) || (maxBytes !== null && bytes > maxBytes)) {
      this.rejected += messages
      throw sluiceError(
        ErrorCode.QueueFull,
        `a batch of ${messages} messages (${bytes} bytes) is larger than topic ${this.info.name}'s whole backlog limit; send smaller batches`,
        { details: { topic: this.info.name, retryAfterMs: 0 } },
      )
    }
    let room = this.room(messages, bytes)
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
      case Overflow.DropOldest: {
        while (!room.fits) {
          const evicted = await this.hooks.evictOldest(room.excess)
          this.dropped += evicted
          if (evicted === 0) break
          room = this.room(messages, bytes)
        }
        if (!room.fits) {
          this.rejected += messages
          throw new QueueFullError(
            `topic ${this.info.name} is full and its pending publishes leave nothing to evict; retry shortly`,
            100,
          )
        }
        this.reserve(messages, bytes)
        return
      }
      case Overflow.Block:
        await new Promise<void>((resolve, reject) => {
          const timeoutMs = options.timeoutMs ?? limits.defaultPublishWaitMs
          const settle = (err?: SluiceError): void => {
            cancelTimer()
            this.endWaits.delete(settle)
            options.signal?.removeEventListener('abort', onAbort)
            this.waiters = this.waiters.filter((w) => w !== waiter)
            if (err === undefined) resolve()
            else reject(err)
          }
          const waiter: Waiter = { messages, bytes, resolve: () => settle(), reject: (err) => settle(err) }
          const cancelTimer = this.clock.setTimer(
            () => {
              this.rejected += messages
              settle(
                sluiceError(
                  ErrorCode.Timeout,
                  `topic ${JSON.stringify(this.info.name)} stayed full for ${timeoutMs} ms; nothing was stored`,
                  { details: { topic: this.info.name, timeoutMs } },
                ),
              )
            },
            timeoutMs,
            true,
          )
          const onAbort = (): void =>
            settle(sluiceError(ErrorCode.Aborted, `publish to ${this.info.name} aborted while waiting for room`))
          if (options.signal?.aborted === true) {
            onAbort()
            return
          }
          options.signal?.addEventListener('abort', onAbort, { once: true })
          this.endWaits.add(settle)
          this.waiters.push(waiter)
          this.wake()
          if (this.waiters.includes(waiter)) options.onWait?.()
        })
    }
  }

  private reserve(messages: number, bytes: number): void {
    this.pendingMessages += messages
    this.pendingBytes += bytes
  }

  /** Lets blocked publishes in, oldest first, while there is room; each is reserved as it goes in. */
  private wake(): void {
    while (this.waiters.length > 0) {
      const first = this.waiters[0]!
      if (!this.room(first.messages, first.bytes).fits) return
      this.reserve(first.messages, first.bytes)
      first.resolve()
    }
  }

  private sleep(ms: number, messages: number, options: AdmitOptions, what: string): Promise<void> {
    const limitMs = options.timeoutMs ?? limits.defaultPublishWaitMs
    if (ms > limitMs) {
      this.rejected += messages
      return Promise.reject(
        sluiceError(
          ErrorCode.Timeout,
          `${what} would delay this publish ${Math.ceil(ms)} ms, past its timeoutMs of ${limitMs}; nothing was stored`,
        ),
      )
    }
    const aborted = (): SluiceError => abortedWhileWaiting(what)
    if (options.signal?.aborted === true) return Promise.reject(aborted())
    options.onWait?.()
    return new Promise((resolve, reject) => {
      const settle = (err?: SluiceError): void => {
        cancel()
        this.endWaits.delete(settle)
        options.signal?.removeEventListener('abort', onAbort)
        if (err === undefined) resolve()
        else reject(err)
      }
      const onAbort = (): void => settle(aborted())
      const cancel = this.clock.setTimer(() => settle(), ms, true)
      options.signal?.addEventListener('abort', onAbort, { once: true })
      this.endWaits.add(settle)
    })
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
