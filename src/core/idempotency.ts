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
 * (default 7 days): a redelivery after that runs the effect again.
 *
 * The window that remains: a crash after the effect and before its record.
 * Pass `verify` (for example a database lookup, as the payment example does)
 * to close it; without `verify` the effect runs again in that case.
 */
export interface IdempotencyOptions {
  /** How long completions are remembered. Default 7 days. */
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

export class Idempotency {
  private readonly done = new Set<string>()
  private next = 0

  private constructor(
    private readonly sluice: Sluice,
    readonly topic: string,
  ) {}

  /** Opens (creating if needed) the completion record in `topic` and loads it. */
  static async open(sluice: Sluice, topic: string, options: IdempotencyOptions = {}): Promise<Idempotency> {
    checkTopicName(topic)
    if (options.retentionMs !== undefined) checkInteger('retentionMs', options.retentionMs, 1000, 365 * 86_400_000)
    const info = await sluice.describeTopic(topic)
    if (info.partitions !== 1) {
      throw sluiceError(
        ErrorCode.Conflict,
        `idempotency topic ${JSON.stringify(topic)} has ${info.partitions} partitions; it needs 1 (use another topic)`,
      )
    }
    const store = new Idempotency(sluice, topic)
    await store.refresh()
    return store
  }

  /** Reads completions recorded since the last look (by any process). */
  private async refresh(): Promise<void> {
    for (;;) {
      const batch = await this.sluice.read(this.topic, 0, this.next, 5000)
      if (batch.length === 0) return
      for (const m of batch) this.done.add(m.id)
      this.next = batch[batch.length - 1]!.offset + 1
    }
  }

  /** Whether `key` is recorded as done. */
  async isDone(key: string): Promise<boolean> {
    if (this.done.has(key)) return true
    await this.refresh()
    return this.done.has(key)
  }

  /** Records `key` as done (durably, as the topic's durability says). */
  async markDone(key: string): Promise<void> {
    await this.sluice.publish(this.topic, { at: Date.now() }, { id: key })
    this.done.add(key)
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
