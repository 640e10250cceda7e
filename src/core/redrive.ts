import type { Clock } from './clock.ts'
import { DeadLetterHeaders, RedriveSubscription, withoutDeadLetterHeaders } from './dead-letters.ts'
import type { RedriveOptions, RedriveResult } from './dead-letters.ts'
import type { Driver, DriverConsumer } from './driver.ts'
import { ErrorCode, hasCode } from './errors.ts'
import { uuidv7 } from './ids.ts'
import { limits } from './limits.ts'
import { DeliveryGuarantee, Ordering, StartAt } from './types.ts'
import type { LeasedRecord } from './types.ts'
import { checkInteger, checkTopicName, invalid, isPlainObject } from './validate.ts'

/** Redrive options, checked: the dead-letter topic named, defaults filled in. */
export interface CheckedRedrive {
  readonly topic: string
  readonly deadLetterTopic: string
  readonly to: string | undefined
  readonly max: number
  /** Messages per second; Infinity: as fast as possible. */
  readonly ratePerSecond: number
}

/** Checks `redrive(topic, options)` (INVALID_ARGUMENT naming the bad one); the broker checks what a client sends with it. */
export function checkRedrive(topic: unknown, options: unknown = {}): CheckedRedrive {
  checkTopicName(topic)
  if (!isPlainObject(options))
    invalid('redrive options must be an object of { to?, ratePerSecond?, max?, deadLetterTopic? }')
  const o = options as RedriveOptions
  return {
    topic: topic as string,
    deadLetterTopic: checkTopicName(o.deadLetterTopic ?? `${topic as string}.dlq`),
    to: o.to === undefined ? undefined : checkTopicName(o.to),
    max: o.max === undefined ? Number.MAX_SAFE_INTEGER : checkInteger('max', o.max, 1, Number.MAX_SAFE_INTEGER),
    ratePerSecond:
      o.ratePerSecond === undefined ? Infinity : checkInteger('ratePerSecond', o.ratePerSecond, 1, 10_000_000),
  }
}

/**
 * The most a redrive may move in one call: what one look at the dead-letter
 * topic sees (dead letters that arrive during it wait for the next one).
 */
export function redriveBound(options: CheckedRedrive): number {
  return Math.min(options.max, limits.readMax)
}

/**
 * The redrive every driver that holds the data runs (the engine; the broker
 * through it), on that driver's own handles: it consumes the dead-letter topic
 * with the reserved `_redrive` subscription, which no client may open. Each
 * move is one transaction (the dead letter acknowledged and its copy
 * published together), so a dead letter moves once; one whose lease was lost
 * is left for a later redrive. Paced on `clock`: the n-th move no earlier
 * than n / ratePerSecond seconds after the start. `signal` stops it between
 * moves (what moved stays moved); the answer says how many moved.
 */
export async function redriveDeadLetters(
  driver: Driver,
  clock: Clock,
  options: CheckedRedrive,
  signal?: AbortSignal,
): Promise<RedriveResult> {
  const { deadLetterTopic: dlq, to, max, ratePerSecond: rate, topic } = options
  let waiting: number
  try {
    waiting = (await driver.peek(dlq, RedriveSubscription, redriveBound(options))).length
  } catch (err) {
    if (hasCode(err, ErrorCode.TopicNotFound)) return { moved: 0 }
    throw err
  }
  if (waiting === 0) return { moved: 0 }
  // Leases cover about a second of moves at the rate: far inside their timeout, so none should be lost.
  const perLease = Math.min(100, Number.isFinite(rate) ? rate : 100)
  const consumer = await driver.openConsumer(dlq, RedriveSubscription, {
    delivery: DeliveryGuarantee.AtLeastOnce,
    ordering: Ordering.None,
    startAt: StartAt.Earliest,
    ackTimeoutMs: 30_000,
    maxLeaseMs: 60_000,
    maxAttempts: 1_000_000,
    backoff: { initialMs: 100, multiplier: 2, maxMs: 10_000, jitter: 0.2 },
    deadLetter: null,
  })
  let moved = 0
  let tried = 0
  const started = clock.now()
  const stopped = (): boolean => signal?.aborted === true
  try {
    while (moved < max && tried < waiting && !stopped()) {
      const batch = await leaseWithin(consumer, Math.min(perLease, max - moved, waiting - tried), clock, 1000)
      if (batch.length === 0) break
      for (const record of batch) {
        // Pace: the n-th message goes no earlier than n / rate seconds after the start.
        const wait = started + (tried * 1000) / rate - clock.now()
        if (wait > 0) await pause(clock, wait, signal)
        if (stopped()) break
        tried++
        const target = to ?? record.headers[DeadLetterHeaders.OriginalTopic] ?? topic
        const copy = {
          id: record.id,
          key: record.key,
          headers: withoutDeadLetterHeaders(record.headers),
          payload: record.payload,
          format: record.format,
          deliverAt: 0,
        }
        const ref = { partition: record.partition, offset: record.offset, attempt: record.attempt }
        // Not acknowledged (the lease was lost): it was not published either, and stays a dead letter.
        const { acked } = await consumer.commit(ref, [{ topic: target, records: [copy] }], uuidv7())
        if (acked) moved++
      }
    }
  } finally {
    // Whatever was leased and not moved goes back unstarted.
    await consumer.close([])
  }
  return { moved }
}

/**
 * Leases up to `max`, waiting at most `ms` on the clock for the first. The
 * wait keeps the process alive: a redrive (say `sluice dlq redrive` on an
 * embedded log) waiting for a dead letter back from backoff is work in
 * progress, not an idle process that may exit.
 */
async function leaseWithin(consumer: DriverConsumer, max: number, clock: Clock, ms: number): Promise<LeasedRecord[]> {
  const timeout = new AbortController()
  const cancel = clock.setTimer(() => timeout.abort(), ms, true)
  try {
    return await consumer.lease(max, timeout.signal)
  } finally {
    cancel()
  }
}

/** Waits `ms` on the clock, or until the signal aborts. */
function pause(clock: Clock, ms: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise<void>((resolve) => {
    const done = (): void => {
      cancel()
      signal?.removeEventListener('abort', done)
      resolve()
    }
    const cancel = clock.setTimer(done, ms, true)
    signal?.addEventListener('abort', done, { once: true })
  })
}
