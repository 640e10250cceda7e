import { backoffDelay } from '../../core/backoff.ts'
import type { DriverConsumer } from '../../core/driver.ts'
import { ErrorCode, sluiceError, type SluiceError } from '../../core/errors.ts'
import { uuidv7 } from '../../core/ids.ts'
import { MovingRate } from '../../core/rate.ts'
import type {
  CommitResult,
  ConsumerConfig,
  LeasedRecord,
  LeaseRef,
  Receipt,
  TransactionOutput,
} from '../../core/types.ts'
import { num, recordOf, text } from './entries.ts'
import { Script } from './link.ts'
import type { RedisDriver, Registration } from './redis-driver.ts'
import { joinScript, leaseScript, reorderScript, settleScript } from './lua/subscription.ts'
import { writeDeadLetters } from './dead-letter-writer.ts'
import { commitArgs } from './transactions.ts'

const scripts = {
  join: new Script('join', joinScript),
  reorder: new Script('reorder', reorderScript),
  lease: new Script('lease', leaseScript),
  settle: new Script('settle', settleScript),
}

/** A consumer counts as live this long after it was last seen (it says it is alive every third of it). */
const liveMs = 30_000
/** A waiting lease looks again at least this often, in case a wake-up was missed (a reconnect). */
const pollMs = 1000

interface Held {
  readonly ref: LeaseRef
  readonly grantedAt: number
  cancelTimer: () => void
}

type SettleAction = 'ack' | 'nack' | 'extend' | 'release'

/** One consumer of a subscription on Redis: leases by script, loses a lease on the clock. */
export class RedisConsumer implements DriverConsumer {
  private readonly held = new Map<string, Held>()
  private readonly lostListeners: ((ref: LeaseRef) => void)[] = []
  private readonly closedListeners: ((reason: SluiceError) => void)[] = []
  private readonly finishedListeners: (() => void)[] = []
  private readonly wakers = new Set<() => void>()
  private readonly dying = new Set<Promise<void>>()
  /** Transactions on their way: a consumer that leaves lets them finish first (a decided commit is not undone). */
  private readonly committing = new Set<Promise<unknown>>()
  private readonly id = uuidv7()
  private ended: SluiceError | null = null
  private closing = false
  private nextPartition = 0
  private readonly stopWake: () => void
  private readonly stopHeartbeat: () => void

  private constructor(
    private readonly driver: RedisDriver,
    private readonly registration: Registration,
    private readonly subscription: string,
    private readonly config: ConsumerConfig,
    /** Per partition: the subscription's generation there. */
    private readonly gens: readonly string[],
  ) {
    this.stopWake = driver.link.onWake(driver.keys.wake(this.topic), () => this.wake())
    let cancel = (): void => undefined
    let stopped = false
    // Re-armed on the next turn, from the time then: a clock that jumps ahead (a test's) beats once, not once per
    // interval it jumped over.
    const beat = (): void => {
      void this.seen()
      setImmediate(() => {
        if (!stopped) cancel = driver.clock.setTimer(beat, liveMs / 3)
      })
    }
    cancel = driver.clock.setTimer(beat, liveMs / 3)
    this.stopHeartbeat = () => {
      stopped = true
      cancel()
    }
  }

  private get topic(): string {
    return this.registration.info.name
  }

  /** Joins every partition's state (creating it on first use); CONFLICT when live consumers use other settings. */
  static async join(
    driver: RedisDriver,
    registration: Registration,
    subscription: string,
    config: ConsumerConfig,
  ): Promise<RedisConsumer> {
    const topic = registration.info.name
    const gen = uuidv7()
    const now = driver.clock.now()
    const live = await driver.link.call('ZCOUNT consumers', (c) =>
      c.zcount(driver.keys.consumers(topic, subscription), `(${now}`, '+inf'),
    )
    const gens: string[] = []
    for (let p = 0; p < registration.info.partitions; p++) {
      const keys = driver.keys.subscription(topic, p, subscription)
      const reply = await driver.link.run(scripts.join, keys, [
        gen,
        config.startAt,
        config.ordering,
        config.delivery,
        subscription,
      ])
      const [storedGen, ordering, delivery] = Array.isArray(reply) ? reply.map(text) : []
      if (ordering !== config.ordering || delivery !== config.delivery) {
        if (live > 0)
          throw sluiceError(
            ErrorCode.Conflict,
            `subscription ${JSON.stringify(subscription)} of ${JSON.stringify(topic)} has live consumers with ordering '${ordering}' and delivery '${delivery}'; join with the same, or use another subscription name`,
            { details: { topic, subscription, ordering, delivery } },
          )
        // No live consumer: the subscription takes the new settings, its held-back messages freed (lua/subscription.ts).
        await driver.link.run(scripts.reorder, keys, [config.ordering, config.delivery, driver.clock.now()])
      }
      gens.push(storedGen ?? gen)
    }
    await driver.link.call('SADD subs', (c) => c.sadd(driver.keys.subscriptions(topic), subscription))
    const consumer = new RedisConsumer(driver, registration, subscription, config, gens)
    await consumer.seen()
    return consumer
  }

  private async seen(): Promise<void> {
    if (this.ended !== null || this.closing) return
    const key = this.driver.keys.consumers(this.topic, this.subscription)
    const now = this.driver.clock.now()
    const stillThere = await this.driver.link
      .call('ZADD consumers', async (c) => {
        await c.zadd(key, now + liveMs, this.id)
        await c.zremrangebyscore(key, '-inf', now)
        // Looked at after the ZADD: a delete removes the subscription's state before this key, so a beat that
        // lands after the delete sees the state gone and takes itself back (else it would leave the key behind
        // and a ghost live consumer that refuses another ordering for 30 s).
        if ((await c.hget(this.keysOf(0)[2]!, 'gen')) === this.gens[0]) return true
        await c.zrem(key, this.id)
        return false
      })
      .catch(() => true)
    if (!stillThere) await this.gone()
  }

  private keysOf(partition: number): string[] {
    return this.driver.keys.subscription(this.topic, partition, this.subscription)
  }

  /** Why the driver ended this consumer, or null (read through a call: it changes across awaits). */
  private endedWith(): SluiceError | null {
    return this.ended
  }

  /** Whether the driver ended this consumer (read through a call: it changes across awaits). */
  private isEnded(): boolean {
    return this.ended !== null
  }

  private wake(): void {
    for (const w of [...this.wakers]) w()
  }

  async lease(max: number, signal: AbortSignal): Promise<LeasedRecord[]> {
    for (;;) {
      if (this.ended !== null || this.closing || signal.aborted) return []
      // Listen before looking, so that a wake-up between the look and the wait is not missed.
      const state = { woken: false, resolveWait: (): void => undefined }
      const waiter = (): void => {
        state.woken = true
        state.resolveWait()
      }
      this.wakers.add(waiter)
      try {
        const { records, wakeAt } = await this.tryLease(max)
        if (records.length > 0 || this.isEnded()) return records
        if (state.woken) continue
        await new Promise<void>((resolve) => {
          const cancels: (() => void)[] = []
          const done = (): void => {
            for (const cancel of cancels) cancel()
            signal.removeEventListener('abort', done)
            resolve()
          }
          state.resolveWait = done
          signal.addEventListener('abort', done, { once: true })
          if (wakeAt >= 0) cancels.push(this.driver.clock.setTimer(done, Math.max(0, wakeAt - this.driver.clock.now())))
          const poll = setTimeout(done, pollMs)
          poll.unref()
          cancels.push(() => clearTimeout(poll))
        })
      } finally {
        this.wakers.delete(waiter)
      }
    }
  }

  /** One look at every partition, the next one first each time (fair when some are busy). */
  private async tryLease(max: number): Promise<{ records: LeasedRecord[]; wakeAt: number }> {
    const partitions = this.registration.info.partitions
    const records: LeasedRecord[] = []
    let wakeAt = -1
    const first = this.nextPartition
    this.nextPartition = (first + 1) % partitions
    for (let i = 0; i < partitions && records.length < max; i++) {
      const p = (first + i) % partitions
      const { backoff } = this.config
      const now = this.driver.clock.now()
      const reply = await this.driver.link.run(scripts.lease, this.keysOf(p), [
        this.gens[p]!,
        now,
        max - records.length,
        this.config.ackTimeoutMs,
        this.config.maxAttempts,
        backoff.initialMs,
        backoff.multiplier,
        backoff.maxMs,
        0,
        this.subscription,
      ])
      if (!Array.isArray(reply) || text(reply[0]) !== 'ok') {
        await this.gone()
        return { records: [], wakeAt: -1 }
      }
      const partWake = num(reply[1])
      if (partWake >= 0 && (wakeAt < 0 || partWake < wakeAt)) wakeAt = partWake
      if (num(reply[2]) > 0) this.writeDeadLetters(p)
      const count = num(reply[3])
      for (let r = 0; r < count; r++) {
        const offset = num(reply[4 + r * 3])
        const attempt = num(reply[5 + r * 3])
        const record = recordOf(reply[6 + r * 3] ?? null, p, offset)
        const ref = { partition: p, offset, attempt }
        this.hold(ref, now, this.config.ackTimeoutMs)
        records.push({ ...record, attempt })
      }
    }
    return { records, wakeAt }
  }

  /** Keeps a lease, and loses it on the clock when its deadline passes (the server refuses it from then on too). */
  private hold(ref: LeaseRef, grantedAt: number, ms: number): void {
    const id = `${ref.partition}:${ref.offset}`
    this.held.get(id)?.cancelTimer()
    const held: Held = { ref, grantedAt, cancelTimer: () => undefined }
    held.cancelTimer = this.driver.clock.setTimer(() => {
      if (this.held.get(id) !== held) return
      this.held.delete(id)
      for (const listener of this.lostListeners) listener(ref)
    }, ms)
    this.held.set(id, held)
  }

  private drop(ref: LeaseRef): void {
    const id = `${ref.partition}:${ref.offset}`
    const held = this.held.get(id)
    if (held === undefined || held.ref.attempt !== ref.attempt) return
    held.cancelTimer()
    this.held.delete(id)
  }

  /** Runs one settle action on each partition's refs; per ref the script's answer (0 lost, 1 done, 2 dead letter). */
  private async settle(
    action: SettleAction,
    refs: readonly LeaseRef[],
    msOf: (ref: LeaseRef) => number,
    reason = '',
  ): Promise<number[]> {
    const answers = new Array<number>(refs.length).fill(0)
    // Ended by a delete: the caller hears why (CLOSED), not that a lease was lost.
    if (this.ended !== null) throw this.ended
    const seen = { gone: false }
    const byPartition = new Map<number, number[]>()
    refs.forEach((ref, i) => {
      const list = byPartition.get(ref.partition) ?? []
      list.push(i)
      byPartition.set(ref.partition, list)
    })
    const now = this.driver.clock.now()
    await Promise.all(
      [...byPartition].map(async ([p, indexes]) => {
        if (p < 0 || p >= this.gens.length) return
        const args: (string | number)[] = [
          this.gens[p]!,
          now,
          action,
          this.config.maxAttempts,
          reason,
          this.config.maxLeaseMs,
          this.subscription,
          this.driver.keys.wake(this.topic),
          p,
          indexes.length,
        ]
        for (const i of indexes) args.push(refs[i]!.offset, refs[i]!.attempt, msOf(refs[i]!))
        const reply = await this.driver.link.run(scripts.settle, this.keysOf(p), args)
        if (!Array.isArray(reply) || (reply.length > 0 && text(reply[0]) === 'gone')) {
          seen.gone = true
          return
        }
        indexes.forEach((i, k) => (answers[i] = num(reply[k])))
        if (answers.some((a, i) => a === 2 && refs[i]!.partition === p)) this.writeDeadLetters(p)
      }),
    )
    if (seen.gone) {
      await this.gone()
      const why = this.endedWith()
      if (why !== null) throw why
    }
    return answers
  }

  async ack(refs: readonly LeaseRef[]): Promise<boolean[]> {
    const answers = await this.settle('ack', refs, () => 0)
    let acked = 0
    refs.forEach((ref, i) => {
      if (answers[i] === 1) {
        this.drop(ref)
        acked++
      }
    })
    this.countAcks(acked)
    return answers.map((a) => a === 1)
  }

  private countAcks(count: number): void {
    if (count === 0) return
    const key = `${this.topic}\0${this.subscription}`
    const rate = this.driver.ackRates.get(key) ?? new MovingRate(this.driver.clock.now())
    this.driver.ackRates.set(key, rate)
    rate.add(count, this.driver.clock.now())
  }

  async nack(refs: readonly LeaseRef[], delayMs: number | null, reason: string): Promise<boolean[]> {
    const answers = await this.settle(
      'nack',
      refs,
      (ref) => delayMs ?? backoffDelay(this.config.backoff, ref.attempt),
      reason,
    )
    refs.forEach((ref, i) => {
      if (answers[i] !== 0) this.drop(ref)
    })
    return answers.map((a) => a !== 0)
  }

  async extend(refs: readonly LeaseRef[], ms: number): Promise<boolean[]> {
    const now = this.driver.clock.now()
    const answers = await this.settle('extend', refs, () => ms)
    refs.forEach((ref, i) => {
      const held = this.held.get(`${ref.partition}:${ref.offset}`)
      if (answers[i] !== 1 || held === undefined || held.ref.attempt !== ref.attempt) return
      const deadline = Math.min(now + ms, held.grantedAt + this.config.maxLeaseMs)
      this.hold(ref, held.grantedAt, Math.max(0, deadline - now))
    })
    return answers.map((a) => a === 1)
  }

  async release(refs: readonly LeaseRef[]): Promise<void> {
    await this.settle('release', refs, () => 0)
    for (const ref of refs) this.drop(ref)
  }

  async commit(ref: LeaseRef, outputs: readonly TransactionOutput[], txId: string): Promise<CommitResult> {
    const work = commitArgs(this.driver, this.registration, this.subscription, this.gens, ref, outputs, txId)
    this.committing.add(work)
    const result = await work.finally(() => this.committing.delete(work))
    if (result.acked) {
      this.drop(ref)
      this.countAcks(1)
    }
    return result
  }

  onLeaseLost(listener: (ref: LeaseRef) => void): void {
    this.lostListeners.push(listener)
  }

  onClosed(listener: (reason: SluiceError) => void): void {
    this.closedListeners.push(listener)
  }

  /** Called once when this consumer is done (closed or ended by the driver). */
  onFinished(listener: () => void): void {
    this.finishedListeners.push(listener)
  }

  /** Writes the dead-letter copies of a partition's messages out of attempts (see dead-letter-writer.ts). */
  private writeDeadLetters(partition: number): void {
    const work = writeDeadLetters({
      driver: this.driver,
      source: this.registration.info,
      subscription: this.subscription,
      deadLetter: this.config.deadLetter,
      keys: this.keysOf(partition),
      gen: this.gens[partition]!,
      partition,
    }).catch(() => undefined)
    const tracked = work.finally(() => this.dying.delete(tracked))
    this.dying.add(tracked)
  }

  /** The subscription's state was deleted (with its topic or on its own): this consumer ends with CLOSED. */
  private async gone(): Promise<void> {
    if (this.ended !== null) return
    let why = `subscription ${JSON.stringify(this.subscription)} of topic ${JSON.stringify(this.topic)} was deleted`
    try {
      const now = await this.driver.registration(this.topic, true)
      if (now.gen !== this.registration.gen) why = `topic ${JSON.stringify(this.topic)} was deleted (and created again)`
    } catch {
      why = `topic ${JSON.stringify(this.topic)} was deleted`
    }
    if (this.isEnded()) return
    this.ended = sluiceError(ErrorCode.Closed, `${why}; this consumer is closed`, {
      details: { topic: this.topic, subscription: this.subscription },
    })
    for (const held of this.held.values()) held.cancelTimer()
    this.held.clear()
    this.finish()
    for (const listener of this.closedListeners) listener(this.ended)
  }

  private finish(): void {
    this.stopWake()
    this.stopHeartbeat()
    this.wake()
    for (const listener of this.finishedListeners.splice(0)) listener()
  }

  async close(handed?: readonly LeaseRef[]): Promise<void> {
    if (this.closing) return
    this.closing = true
    this.wake()
    await Promise.allSettled([...this.committing])
    if (this.ended === null) {
      const handedIds = new Set((handed ?? []).map((r) => `${r.partition}:${r.offset}:${r.attempt}`))
      const failed: LeaseRef[] = []
      const back: LeaseRef[] = []
      for (const { ref } of this.held.values()) {
        if (handed === undefined || handedIds.has(`${ref.partition}:${ref.offset}:${ref.attempt}`)) failed.push(ref)
        else back.push(ref)
      }
      await Promise.all([
        failed.length > 0 ? this.nack(failed, null, 'the consumer left without settling it') : undefined,
        back.length > 0 ? this.release(back) : undefined,
      ]).catch(() => undefined)
      await Promise.all([...this.dying])
      const key = this.driver.keys.consumers(this.topic, this.subscription)
      await this.driver.link.call('ZREM consumers', (c) => c.zrem(key, this.id)).catch(() => undefined)
    }
    for (const held of this.held.values()) held.cancelTimer()
    this.held.clear()
    if (this.ended === null) this.finish()
  }
}

export type { Receipt }
