import type { AutoscaleConfig } from './autoscaler.ts'
import { checkBackoff, type BackoffOptions } from './backoff.ts'
import { DeliveryGuarantee, Ordering, StartAt, type ConsumerConfig } from './types.ts'
import { checkInteger, checkKnownKeys, checkTopicName, invalid, isPlainObject } from './validate.ts'

/** Options of `subscribe`. Every field has a default. */
export interface SubscribeOptions {
  /** Default `at-least-once`. */
  readonly delivery?: DeliveryGuarantee
  /** Default `key`. */
  readonly ordering?: Ordering
  /**
   * Handlers running at once in this consumer. Default 1. Or autoscaled:
   * `{ min, max, targetTimeToEmptyMs }` grows and shrinks it from the measured
   * arrival rate, handler speed and depth (see `subscription.on('consumer.autoscale', …)`).
   */
  readonly concurrency?: number | { readonly min?: number; readonly max: number; readonly targetTimeToEmptyMs?: number }
  /** Messages leased ahead of the running handlers. Default: as many as `concurrency`. */
  readonly prefetch?: number
  /** A lease not extended or acknowledged within this is lost. Default 30000. Extended automatically while a handler runs. */
  readonly ackTimeoutMs?: number
  /** Automatic extension stops after this long (then the lease expires). Default 1800000 (30 minutes). */
  readonly maxLeaseMs?: number
  /** Deliveries in total (not retries) before dead-lettering. Default 5. */
  readonly maxAttempts?: number
  readonly backoff?: BackoffOptions
  /** Dead-letter topic (default `<topic>.dlq`), or false to drop (and count) messages that run out of attempts. */
  readonly deadLetter?: string | false
  /** Where a new subscription starts. Default `earliest`. Ignored when the subscription exists. */
  readonly startAt?: StartAt
  /** Aborting it closes the subscription (draining). */
  readonly signal?: AbortSignal
}

export interface CheckedSubscribeOptions {
  readonly config: ConsumerConfig
  /** The starting concurrency (the minimum when autoscaled). */
  readonly concurrency: number
  readonly autoscale: AutoscaleConfig | null
  readonly prefetch: number
  readonly signal: AbortSignal | undefined
}

const known = [
  'delivery',
  'ordering',
  'concurrency',
  'prefetch',
  'ackTimeoutMs',
  'maxLeaseMs',
  'maxAttempts',
  'backoff',
  'deadLetter',
  'startAt',
  'signal',
] as const

function oneOf<T extends string>(name: string, value: unknown, allowed: Record<string, T>, fallback: T): T {
  if (value === undefined) return fallback
  const values: string[] = Object.values(allowed)
  if (typeof value !== 'string' || !values.includes(value)) {
    invalid(`${name} must be one of ${values.map((v) => `'${v}'`).join(', ')}, got ${JSON.stringify(value)}`)
  }
  return value as T
}

/** Checks `subscribe` options and fills defaults; INVALID_ARGUMENT with the fix on anything wrong. */
export function checkSubscribeOptions(topic: string, options: unknown): CheckedSubscribeOptions {
  const o = (options ?? {}) as SubscribeOptions & Record<string, unknown>
  if (!isPlainObject(o)) invalid('subscribe options must be a plain object')
  checkKnownKeys('subscribe', o, known)
  let concurrency = 1
  let autoscale: AutoscaleConfig | null = null
  if (typeof o.concurrency === 'object') {
    const c: unknown = o.concurrency
    if (!isPlainObject(c)) invalid('concurrency must be a number or { min, max, targetTimeToEmptyMs }')
    checkKnownKeys('concurrency', c, ['min', 'max', 'targetTimeToEmptyMs'])
    const max = checkInteger('concurrency.max', c['max'], 1, 10_000)
    const min = c['min'] === undefined ? 1 : checkInteger('concurrency.min', c['min'], 1, max)
    const target =
      c['targetTimeToEmptyMs'] === undefined
        ? 60_000
        : checkInteger('concurrency.targetTimeToEmptyMs', c['targetTimeToEmptyMs'], 100, 86_400_000)
    autoscale = { min, max, targetTimeToEmptyMs: target }
    concurrency = min
  } else if (o.concurrency !== undefined) {
    concurrency = checkInteger('concurrency', o.concurrency, 1, 10_000)
  }
  const prefetch =
    o.prefetch === undefined ? (autoscale?.max ?? concurrency) : checkInteger('prefetch', o.prefetch, 0, 100_000)
  const ackTimeoutMs =
    o.ackTimeoutMs === undefined ? 30_000 : checkInteger('ackTimeoutMs', o.ackTimeoutMs, 10, 86_400_000)
  const maxLeaseMs =
    o.maxLeaseMs === undefined
      ? Math.max(1_800_000, ackTimeoutMs)
      : checkInteger('maxLeaseMs', o.maxLeaseMs, 10, 7 * 86_400_000)
  if (maxLeaseMs < ackTimeoutMs) invalid(`maxLeaseMs (${maxLeaseMs}) must be at least ackTimeoutMs (${ackTimeoutMs})`)
  let deadLetter: string | null = `${topic}.dlq`
  if (o.deadLetter === false) deadLetter = null
  else if (o.deadLetter !== undefined) {
    if (typeof o.deadLetter !== 'string') invalid('deadLetter must be a topic name or false')
    deadLetter = checkTopicName(o.deadLetter)
  } else if (deadLetter.length > 200) {
    invalid(`the default dead-letter topic ${deadLetter} is too long a name; give deadLetter a topic name, or false`)
  }
  if (deadLetter === topic) invalid(`deadLetter must not be the subscribed topic ${topic} itself`)
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) invalid('signal must be an AbortSignal')
  return {
    config: {
      delivery: oneOf('delivery', o.delivery, DeliveryGuarantee, DeliveryGuarantee.AtLeastOnce),
      ordering: oneOf('ordering', o.ordering, Ordering, Ordering.Key),
      startAt: oneOf('startAt', o.startAt, StartAt, StartAt.Earliest),
      ackTimeoutMs,
      maxLeaseMs,
      maxAttempts: o.maxAttempts === undefined ? 5 : checkInteger('maxAttempts', o.maxAttempts, 1, 1_000_000),
      backoff: checkBackoff(o.backoff),
      deadLetter,
    },
    concurrency,
    autoscale,
    prefetch,
    signal: o.signal,
  }
}

/** The engine and the broker re-check a config that crossed a boundary. */
export function checkConsumerConfig(config: unknown): ConsumerConfig {
  if (!isPlainObject(config)) invalid('consumer config must be an object')
  const c = config as unknown as ConsumerConfig
  const checked = checkSubscribeOptions('', {
    delivery: c.delivery,
    ordering: c.ordering,
    startAt: c.startAt,
    ackTimeoutMs: c.ackTimeoutMs,
    maxLeaseMs: c.maxLeaseMs,
    maxAttempts: c.maxAttempts,
    backoff: c.backoff,
    deadLetter: c.deadLetter ?? false,
  })
  return checked.config
}
