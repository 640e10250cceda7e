import { systemClock, type Clock } from './clock.ts'
import { ErrorCode, sluiceError } from './errors.ts'
import type { Sluice } from './sluice.ts'
import { checkInteger, checkTopicName } from './validate.ts'

/**
 * Remembering which side effects outside Sluice (a card charged, an email
 * sent) are done, so that a redelivered message skips them.
 *
 * Completions are messages in a topic of their own, one per key, with the key
 * as message id (so two processes recording the same key store it once).
 * Each process keeps the keys in memory and reads what others recorded
 * before every check. Keys are kept as long as the topic's retention
 * (default 7 days): a redelivery after that runs the effect again. The
 * memory is bounded the same way: a key recorded longer ago than that is
 * dropped (the topic would drop it too), so memory holds the keys of one
 * retention period, whatever the process's uptime. Not by count: a key
 * forgotten before its time would run an effect twice.
 *
 * The window that remains: a crash after the effect and before its record.
 * Pass `verify` (for example a database lookup, as the payment example does)
 * to close it; without `verify` the effect runs again in that case.
 */
export interface IdempotencyOptions {
  /**
   * How long completions are remembered, in the topic and in memory. Default:
   * the topic's age retention if it has one, else 7 days.
   */
  readonly retentionMs?: number
}

export interface OnceOptions {
  /**
   * Asked when no completion is recorded: whether the effect happened anyway
   * (it ran, then the process died before recording it). True: recorded now, not run.
   */
  readonly verify?: () => boolean | Promise<boolean>
}

export interface OnceResult<T> {
  /** Whether the effect ran now. */
  readonly ran: boolean
  /** What the effect returned, when it ran. */
  readonly result?: T
}

const defaultRetentionMs = 7 * 86_400_000

export class Idempotency {
  /** Key to when it was recorded (ms since the epoch), oldest first. */
  private readonly done = new Map<string, number>()
  private next = 0

  private constructor(
    private readonly sluice: Sluice,
    readonly topic: string,
    /** How long a key is remembered after it was recorded. */
    readonly retentionMs: number,
    private readonly clock: Clock,
  ) {}

  /** Opens (creating if needed) the completion record in `topic` and loads it. */
  static async open(
    sluice: Sluice,
    topic: string,
    options: IdempotencyOptions = {},
    clock: Clock = systemClock,
  ): Promise<Idempotency> {
    checkTopicName(topic)
    if (options.retentionMs !== undefined) checkInteger('retentionMs', options.retentionMs, 1000, 365 * 86_400_000)
    const info = await sluice.describeTopic(topic)
    if (info.partitions !== 1) {
      throw sluiceError(
        ErrorCode.Conflict,
        `idempotency topic ${JSON.stringify(topic)} has ${info.partitions} partitions; it needs 1 (use another topic)`,
      )
    }
    const retentionMs = options.retentionMs ?? info.retention.maxAgeMs ?? defaultRetentionMs
    const store = new Idempotency(sluice, topic, retentionMs, clock)
    await store.refresh()
    return store
  }

  /** Keys remembered now: those recorded within `retentionMs`, once expired ones are dropped. */
  get rememberedKeys(): number {
    this.forgetExpired()
    return this.done.size
  }

  private remember(key: string, recordedAtMs: number): void {
    // Re-inserted, so that the map stays in order of recording.
    this.done.delete(key)
    this.done.set(key, recordedAtMs)
  }

  /** Drops keys recorded before the retention period, from the oldest on. */
  private forgetExpired(): void {
    const since = this.clock.now() - this.retentionMs
    for (const [key, recordedAtMs] of this.done) {
      if (recordedAtMs >= since) break
      this.done.delete(key)
    }
  }

  /** Reads completions recorded since the last look (by any process). */
  private async refresh(): Promise<void> {
    for (;;) {
      const batch = await this.sluice.read(this.topic, 0, this.next, 5000)
      if (batch.length === 0) break
      for (const m of batch) this.remember(m.id, m.timestamp)
      this.next = batch[batch.length - 1]!.offset + 1
    }
    this.forgetExpired()
  }

  /** Whether `key` is recorded as done. */
  async isDone(key: string): Promise<boolean> {
    this.forgetExpired()
    if (this.done.has(key)) return true
    await this.refresh()
    return this.done.has(key)
  }

  /** Records `key` as done (durably, as the topic's durability says). */
  async markDone(key: string): Promise<void> {
    const now = this.clock.now()
    await this.sluice.publish(this.topic, { at: now }, { id: key })
    this.remember(key, now)
    this.forgetExpired()
  }

  /**
   * Runs `effect` unless `key` is recorded as done (or `verify` says it
   * happened), then records it. Use the message id as key, or a key of your
   * own. Two consumers handling the same key at the same moment can both run
   * the effect: use `ordering: 'key'` on the key to serialise them.
   */
  async once<T>(key: string, effect: () => T | Promise<T>, options: OnceOptions = {}): Promise<OnceResult<T>> {
    if (typeof key !== 'string' || key.length === 0)
      throw sluiceError(ErrorCode.InvalidArgument, 'an idempotency key must be a non-empty string')
    if (await this.isDone(key)) return { ran: false }
    if (options.verify !== undefined && (await options.verify())) {
      await this.markDone(key)
      return { ran: false }
    }
    const result = await effect()
    await this.markDone(key)
    return { ran: true, result }
  }
}
