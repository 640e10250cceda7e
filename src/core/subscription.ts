// Over 500 lines: the handler runner (prefetch, concurrency, auto-extension, ack batching, drain on close,
// the async iterator), whose parts share one set of in-flight messages.
import type { Clock } from './clock.ts'
import type { Codec } from './codec.ts'
import type { DriverConsumer } from './driver.ts'
import { asSluiceError, ErrorCode, hasCode, sluiceError, type SluiceError } from './errors.ts'
import { Autoscaler, type AutoscaleConfig, type AutoscaleDecision } from './autoscaler.ts'
import { Events } from './events.ts'
import { LeaseBatcher } from './lease-batcher.ts'
import { uuidv7 } from './ids.ts'
import { LeasedMessage, type Handler, type LeaseOps, type Message, type TransactionMessage } from './message.ts'
import {
  DeliveryGuarantee,
  type ConsumerConfig,
  type LeaseRef,
  type SubscriptionStats,
  type TransactionOutput,
} from './types.ts'

/**
 * The handler runner, the same on every driver: leases messages within
 * `concurrency + prefetch`, runs up to `concurrency` handlers at once,
 * acknowledges on return, nacks with backoff on throw, keeps leases alive
 * while messages are held (up to maxLeaseMs), aborts `msg.signal` when a
 * lease is lost, and drains on close.
 */

export interface SubscriptionSettings {
  readonly topic: string
  readonly name: string
  readonly config: ConsumerConfig
  readonly concurrency: number
  readonly autoscale: AutoscaleConfig | null
  readonly prefetch: number
  readonly codec: Codec | undefined
  readonly clock: Clock
  /** Told about failures the runner handles itself (a refused ack, a lease call that failed). */
  readonly onError?: (err: unknown) => void
  /** This subscription's figures and the topic's count of published messages (for autoscaling). */
  readonly stats: () => Promise<{ subscription: SubscriptionStats; published: number } | undefined>
  /** Checks and encodes messages published by `ack({ publish })`. */
  readonly encodeOutputs: (messages: readonly TransactionMessage[]) => TransactionOutput[]
}

export interface CloseOptions {
  /** Wait for running handlers and give prefetched messages back (default true); false aborts handlers at once. */
  readonly drain?: boolean
  /** The longest a drain waits for running handlers before aborting them. Default 30000. */
  readonly timeoutMs?: number
}

/** Events a subscription emits. */
export interface SubscriptionEvents extends Record<string, unknown> {
  /** An autoscaling evaluation: what it measured and decided (from === to when unchanged). */
  'consumer.autoscale': AutoscaleDecision
}

export class Subscription<T = unknown> implements AsyncIterable<Message<T>> {
  private readonly events = new Events<SubscriptionEvents>()
  private concurrencyNow: number
  private readonly autoscaler: Autoscaler | null
  private cancelAutoscale: (() => void) | null = null
  private handled = 0
  private busyMs = 0
  /** Sum over time of the handlers running (handler-ms) since the last evaluation, and when it was last brought up to date. */
  private busyIntegralMs = 0
  private busyChangedAt = 0
  /** Leased, not yet started. */
  private buffer: LeasedMessage<T>[] = []
  private readonly running = new Set<LeasedMessage<T>>()
  /** Every message this consumer holds a lease on (buffered or running). */
  private readonly held = new Map<number, LeasedMessage<T>>()
  /**
   * Running messages whose lease was lost: no longer held (a redelivery of the same offset may be held meanwhile,
   * even by this consumer), but their handler still takes a place until it returns.
   */
  private readonly lostRunning = new Set<LeasedMessage<T>>()
  /** Acks, nacks and commits sent and not yet answered: a drain waits for them. */
  private opsInFlight = 0
  /** Why the driver ended this consumer (its subscription or topic was deleted), when it did. */
  private endedBy: SluiceError | null = null
  private readonly leaseAbort = new AbortController()
  private stopping = false
  private closePromise: Promise<void> | null = null
  private pump: Promise<void> | null = null
  private wakePump: (() => void) | null = null
  /** Held messages whose handler is done and whose ack or nack is on its way (a subset of `held`). */
  private readonly settling = new Set<LeasedMessage<T>>()
  private cancelHeartbeat: (() => void) | null = null
  private iterating = false
  private current: LeasedMessage<T> | null = null
  private readonly settledListeners = new Set<() => void>()
  /** An open subscription keeps the process alive, as a listening server does. */
  private readonly keepAlive: NodeJS.Timeout = setInterval(() => undefined, 2 ** 30)
  private readonly ops: LeaseOps

  constructor(
    private readonly consumer: DriverConsumer,
    private readonly handler: Handler<T> | null,
    private readonly settings: SubscriptionSettings,
    private readonly onClosed: () => void,
  ) {
    const acks = new LeaseBatcher<[]>((refs) => consumer.ack(refs))
    const nacks = new LeaseBatcher<[number | null, string]>(
      (refs, delayMs, reason) => consumer.nack(refs, delayMs, reason),
      (a, b) => a[0] === b[0] && a[1] === b[1],
    )
    const extends_ = new LeaseBatcher<[number]>(
      (refs, ms) => consumer.extend(refs, ms),
      (a, b) => a[0] === b[0],
    )
    this.ops = {
      commit: (ref, messages) => this.tracked(consumer.commit(ref, settings.encodeOutputs(messages), uuidv7())),
      ack: (ref) => this.tracked(acks.call(ref)),
      nack: (ref, delayMs, reason) => this.tracked(nacks.call(ref, delayMs, reason)),
      extend: (ref, ms) => extends_.call(ref, ms),
    }
    consumer.onLeaseLost((ref) => this.leaseLost(ref))
    consumer.onClosed((reason) => this.ended(reason))
    this.concurrencyNow = settings.concurrency
    this.autoscaler = settings.autoscale === null ? null : new Autoscaler(settings.autoscale)
    this.scheduleHeartbeat()
    if (this.autoscaler !== null && handler !== null) this.scheduleAutoscale()
    if (handler !== null) this.pump = this.runHandlers()
  }

  get topic(): string {
    return this.settings.topic
  }

  get name(): string {
    return this.settings.name
  }

  /** Messages this consumer holds (running and prefetched). */
  get inFlight(): number {
    return this.held.size + this.lostRunning.size
  }

  /** Counts an ack, nack or commit until it is answered (a drain waits for it). */
  private tracked<R>(call: Promise<R>): Promise<R> {
    this.opsInFlight++
    const done = (): void => {
      this.opsInFlight--
      for (const listener of this.settledListeners) listener()
    }
    call.then(done, done)
    return call
  }

  /** The driver ended this consumer: its leases are gone; say so once, and close. */
  private ended(reason: SluiceError): void {
    if (this.stopping) return
    this.endedBy = reason
    this.report(reason)
    for (const message of [...this.held.values()]) message.markLost()
    void this.close({ drain: false })
  }

  get closed(): boolean {
    return this.stopping
  }

  private report(err: unknown): void {
    this.settings.onError?.(err)
  }

  private adopt(records: Awaited<ReturnType<DriverConsumer['lease']>>): void {
    const now = this.settings.clock.now()
    for (const record of records) {
      const message = new LeasedMessage<T>(
        this.topic,
        record,
        this.ops,
        this.settings.config.delivery,
        this.settings.codec,
        now,
      )
      this.held.set(message.refKey, message)
      this.buffer.push(message)
    }
  }

  // --- handler mode ---

  private async runHandlers(): Promise<void> {
    let failures = 0
    while (!this.stopping) {
      // A message whose handler is done and whose ack is on its way takes no place: leasing more at once
      // overlaps the next deliveries with the ack's round trip instead of waiting for it. Up to a point: acks
      // that do not come back (a slow journal, a stalled broker) must still hold the consumer back, so it
      // never holds more than twice its concurrency + prefetch.
      const places = this.concurrencyNow + this.settings.prefetch
      const room = places - this.inFlight + Math.min(this.settling.size, places)
      if (room <= 0) {
        await new Promise<void>((resolve) => (this.wakePump = resolve))
        continue
      }
      try {
        this.adopt(await this.consumer.lease(Math.max(1, room), this.leaseAbort.signal))
        failures = 0
      } catch (err) {
        if (this.leaseAbort.signal.aborted) break
        if (this.endedBy === null) this.report(err)
        if (hasCode(err, ErrorCode.Closed)) break
        // The driver failed (a broker restarting, a read error): try again, backing off to 5 s.
        failures++
        await new Promise<void>((resolve) => {
          const cancel = this.settings.clock.setTimer(resolve, Math.min(5000, 50 * 2 ** failures))
          this.leaseAbort.signal.addEventListener('abort', () => (cancel(), resolve()), { once: true })
        })
      }
      this.startHandlers()
      // Let handlers that finish at once do so (their acks go out) before asking for more: the next lease then
      // asks for every free place in one go, rather than only for the places not yet taken by this batch.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  private startHandlers(): void {
    while (!this.stopping && this.running.size < this.concurrencyNow && this.buffer.length > 0) {
      const message = this.buffer.shift()!
      if (message.lost) continue
      if (this.autoscaler !== null) this.noteBusy()
      this.running.add(message)
      void this.handle(message)
    }
  }

  private async handle(message: LeasedMessage<T>): Promise<void> {
    let failure: { err: unknown } | null = null
    const started = this.settings.clock.now()
    try {
      await this.handler!(message)
    } catch (err) {
      failure = { err }
    }
    this.handled++
    this.busyMs += this.settings.clock.now() - started
    if (this.autoscaler !== null) this.noteBusy()
    // The handler is done: its slot goes to the next message, and its place to a new lease, while the ack or
    // nack is recorded.
    this.running.delete(message)
    this.startHandlers()
    if (this.held.get(message.refKey) === message) {
      this.settling.add(message)
      const wake = this.wakePump
      this.wakePump = null
      wake?.()
    }
    try {
      if (message.settled || message.lost) {
        if (failure !== null && !hasCode(failure.err, ErrorCode.LeaseLost)) this.report(failure.err)
      } else if (failure === null) {
        await message.ack()
      } else {
        const reason = failure.err instanceof Error ? failure.err.message : String(failure.err)
        await message.nack({ reason: reason.slice(0, 1000) })
      }
    } catch (err) {
      this.report(err)
    } finally {
      this.finish(message)
    }
  }

  /**
   * A message is done: free its place, let the pump lease more. Once per delivery: a lease lost while its ack or
   * nack is on the way finishes the message early, and by the time the answer comes its place may hold a
   * redelivery of the same offset, which must stay held (and heartbeated).
   */
  private finish(message: LeasedMessage<T>): void {
    this.settling.delete(message)
    if (this.lostRunning.delete(message)) {
      // Its lease was gone already; its place is free now.
    } else if (this.held.get(message.refKey) === message) this.held.delete(message.refKey)
    else return
    if (this.handler !== null) this.startHandlers()
    const wake = this.wakePump
    this.wakePump = null
    wake?.()
    for (const listener of this.settledListeners) listener()
  }

  /** Handlers that may run at once now (changes when autoscaled). */
  get concurrency(): number {
    return this.concurrencyNow
  }

  /** Listens to an event; returns a function that stops listening. */
  on<K extends keyof SubscriptionEvents>(event: K, listener: (payload: SubscriptionEvents[K]) => void): () => void {
    return this.events.on(event, listener)
  }

  // --- autoscaling ---

  /** Adds handler-time to the busy integral up to now (call before the number of running handlers changes). */
  private noteBusy(now = this.settings.clock.now()): void {
    this.busyIntegralMs += this.running.size * (now - this.busyChangedAt)
    this.busyChangedAt = now
  }

  private scheduleAutoscale(): void {
    const everyMs = 1000
    let lastAt = this.settings.clock.now()
    this.busyChangedAt = lastAt
    let perHandlerRate: number | null = null
    // Arrivals as counted between evaluations, smoothed over about five of them: the stats' one-minute
    // average would keep a burst that has long been consumed in the figure.
    let lastPublished: number | null = null
    let arrivalRate = 0
    const evaluate = async (): Promise<void> => {
      const figures = await this.settings.stats().catch(() => undefined)
      if (this.stopping || figures === undefined) return
      // Everything below is measured over the same span, [lastAt, now).
      const now = this.settings.clock.now()
      this.noteBusy(now)
      const stats = figures.subscription
      const intervalMs = Math.max(1, now - lastAt)
      if (lastPublished !== null) {
        const rate = ((figures.published - lastPublished) * 1000) / intervalMs
        arrivalRate += 0.2 * (rate - arrivalRate)
      }
      lastPublished = figures.published
      // The last measured speed stands while nothing is handled (an idle interval measures nothing).
      if (this.handled > 0 && this.busyMs > 0) perHandlerRate = (this.handled * 1000) / this.busyMs
      const decision = this.autoscaler!.evaluate({
        depth: stats.depth,
        arrivalRate,
        perHandlerRate,
        // Handlers busy on average, long-running ones included (not only those that finished).
        busy: this.busyIntegralMs / intervalMs,
      })
      lastAt = now
      this.handled = 0
      this.busyMs = 0
      this.busyIntegralMs = 0
      this.concurrencyNow = decision.to
      if (decision.to > decision.from) {
        this.startHandlers()
        const wake = this.wakePump
        this.wakePump = null
        wake?.()
      }
      this.events.emit('consumer.autoscale', () => decision)
    }
    const tick = (): void => {
      this.cancelAutoscale = null
      if (this.stopping) return
      void evaluate().finally(() => {
        if (!this.stopping) this.cancelAutoscale = this.settings.clock.setTimer(tick, everyMs)
      })
    }
    this.cancelAutoscale = this.settings.clock.setTimer(tick, everyMs)
  }

  // --- leases ---

  private leaseLost(ref: LeaseRef): void {
    const message = this.held.get(ref.offset * 1024 + ref.partition)
    if (message?.ref.attempt !== ref.attempt) return
    message.markLost()
    if (!this.running.has(message)) {
      this.buffer = this.buffer.filter((m) => m !== message)
      this.finish(message)
      return
    }
    this.held.delete(message.refKey)
    this.lostRunning.add(message)
  }

  /** Extends the leases of held messages every third of ackTimeoutMs, until maxLeaseMs. */
  private scheduleHeartbeat(): void {
    const every = Math.max(5, Math.floor(this.settings.config.ackTimeoutMs / 3))
    const beat = (): void => {
      this.cancelHeartbeat = null
      if (this.stopping && this.held.size === 0) return
      const now = this.settings.clock.now()
      const due = [...this.held.values()].filter((m) => !m.lost && now - m.leasedAt < this.settings.config.maxLeaseMs)
      if (due.length > 0) {
        this.consumer
          .extend(
            due.map((m) => m.ref),
            this.settings.config.ackTimeoutMs,
          )
          .then(
            (results) => {
              results.forEach((ok, i) => {
                const message = due[i]!
                if (!ok && !message.settled) this.leaseLost(message.ref)
              })
            },
            (err: unknown) => this.report(err),
          )
      }
      this.cancelHeartbeat = this.settings.clock.setTimer(beat, every)
    }
    this.cancelHeartbeat = this.settings.clock.setTimer(beat, every)
  }

  // --- iterator mode ---

  /**
   * Consumes with `for await`. Each message is acknowledged when the loop asks
   * for the next one, unless the body already acked or nacked it. `break` (or
   * a throw out of the loop) gives back the current and prefetched messages
   * and closes the subscription.
   */
  [Symbol.asyncIterator](): AsyncIterator<Message<T>> {
    if (this.handler !== null)
      throw sluiceError(ErrorCode.InvalidArgument, 'this subscription runs a handler; subscribe without one to iterate')
    if (this.iterating) throw sluiceError(ErrorCode.InvalidArgument, 'this subscription is already being iterated')
    this.iterating = true
    return {
      next: () => this.nextMessage(),
      return: async () => {
        // Leaving the loop: the message it held goes back with the prefetched ones.
        this.closePromise ??= this.shutdown(true, 30_000, true)
        await this.closePromise
        return { done: true, value: undefined }
      },
    }
  }

  private async nextMessage(): Promise<IteratorResult<Message<T>>> {
    const previous = this.current
    this.current = null
    if (previous !== null) {
      if (!previous.settled && !previous.lost) {
        try {
          await previous.ack()
        } catch (err) {
          // A lost lease means the message comes again: not the loop's failure.
          if (!hasCode(err, ErrorCode.LeaseLost)) throw asSluiceError(err)
        }
      }
      this.finish(previous)
    }
    while (!this.stopping) {
      const message = this.buffer.shift()
      if (message !== undefined) {
        if (message.lost) continue
        this.current = message
        return { done: false, value: message }
      }
      const room = 1 + this.settings.prefetch - this.held.size
      this.adopt(
        await this.consumer.lease(Math.max(1, room), this.leaseAbort.signal).catch((err: unknown) => {
          if (this.stopping) return []
          throw err
        }),
      )
    }
    if (this.endedBy !== null) throw this.endedBy
    return { done: true, value: undefined }
  }

  // --- close ---

  /**
   * Stops consuming. With `drain` (default), waits up to `timeoutMs` for
   * running handlers, then aborts the rest; prefetched messages are given
   * back at once. Resolves when the consumer has left.
   */
  close(options: CloseOptions = {}): Promise<void> {
    this.closePromise ??= this.shutdown(options.drain ?? true, options.timeoutMs ?? 30_000, false)
    return this.closePromise
  }

  /**
   * Prefetched messages go back at once, uncounted (and the one a `for await` loop held, when the loop is
   * left: `fromLoop`). A drain then waits for running handlers (and a message the loop body still holds) and
   * for their acknowledgements to land. What is still in a handler's hands after that is aborted and counts as
   * a failed delivery; anything else the driver still has out for this consumer goes back uncounted.
   */
  private async shutdown(drain: boolean, timeoutMs: number, fromLoop: boolean): Promise<void> {
    this.stopping = true
    this.leaseAbort.abort()
    this.wakePump?.()
    await this.pump
    const reason = sluiceError(ErrorCode.Closed, `subscription ${this.name} closed`)
    const unstarted = this.buffer
    this.buffer = []
    const current = this.current
    // At-most-once: the loop's message was acknowledged when it was handed over; it never goes back.
    if (
      fromLoop &&
      current !== null &&
      !current.settled &&
      this.settings.config.delivery !== DeliveryGuarantee.AtMostOnce
    ) {
      this.current = null
      current.abort(reason)
      unstarted.push(current)
    }
    if (unstarted.length > 0 && this.endedBy === null) {
      await this.consumer.release(unstarted.map((m) => m.ref)).catch((err: unknown) => this.report(err))
    }
    for (const m of unstarted) this.held.delete(m.refKey)
    if (drain) await this.drained(timeoutMs)
    const handed: LeaseRef[] = []
    for (const m of this.running) {
      m.abort(reason)
      if (!m.lost) handed.push(m.ref)
    }
    const held = this.current
    if (held !== null && !held.settled && !held.lost) {
      held.abort(reason)
      handed.push(held.ref)
    }
    this.cancelHeartbeat?.()
    this.cancelAutoscale?.()
    if (this.endedBy === null) await this.consumer.close(handed).catch((err: unknown) => this.report(err))
    clearInterval(this.keepAlive)
    this.onClosed()
  }

  /** Waits up to `timeoutMs` until no handler runs, the loop holds no unsettled message, and every ack has landed. */
  private drained(timeoutMs: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = (): void => {
        cancel()
        this.settledListeners.delete(check)
        resolve()
      }
      const check = (): void => {
        const loopHolds = this.current !== null && !this.current.settled && !this.current.lost
        if (this.running.size === 0 && this.opsInFlight === 0 && !loopHolds) done()
      }
      const cancel = this.settings.clock.setTimer(done, timeoutMs, true)
      this.settledListeners.add(check)
      check()
    })
  }
}
