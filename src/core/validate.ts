import { ErrorCode, sluiceError } from './errors.ts'
import { RedriveSubscription } from './dead-letters.ts'
import { limits } from './limits.ts'
import {
  Durability,
  OnLimit,
  Overflow,
  type Headers,
  type LimitsConfig,
  type PublishOptions,
  type RateLimitConfig,
  type TopicConfig,
  type TopicInfo,
} from './types.ts'

/**
 * Argument checks shared by every driver and by the broker, which must not
 * trust what a client sends. Each failure is INVALID_ARGUMENT with a message
 * that names the argument and says what would be accepted.
 */

export function invalid(message: string, details: Record<string, unknown> = {}): never {
  throw sluiceError(ErrorCode.InvalidArgument, message, { details })
}

const namePattern = /^[A-Za-z0-9-][A-Za-z0-9._-]*$/
/** A well-formed name that only internal code may use. */
const reservedPattern = /^[._][A-Za-z0-9._-]*$/

function checkName(kind: string, name: unknown, allowReserved: boolean): string {
  if (typeof name !== 'string') invalid(`${kind} name must be a string, got ${typeof name}`)
  if (name.length === 0 || name.length > limits.topicNameMaxLength) {
    invalid(`${kind} name must be 1-${limits.topicNameMaxLength} characters, got ${name.length}`, { name })
  }
  const pattern = allowReserved ? /^[A-Za-z0-9._-]+$/ : namePattern
  if (!allowReserved && reservedPattern.test(name)) {
    const what =
      name === RedriveSubscription ? ` (redrive's own; move dead letters with redrive() or 'sluice dlq redrive')` : ''
    invalid(
      `${kind} name ${JSON.stringify(name)} is reserved${what}: names starting with '.' or '_' belong to Sluice; choose a name that starts with a letter, digit or '-'`,
      { name, reserved: true },
    )
  }
  if (!pattern.test(name) || (allowReserved && (name === '.' || name === '..'))) {
    invalid(
      `${kind} name ${JSON.stringify(name)} is invalid: use letters, digits, '.', '_' and '-', not starting with '.' or '_' (reserved)`,
      { name },
    )
  }
  return name
}

/** A topic name: 1-200 chars of `[A-Za-z0-9._-]`, not starting with `.` or `_`. */
export function checkTopicName(name: unknown): string {
  return checkName('topic', name, false)
}

/** Internal code may use the reserved leading `_` (e.g. the `_redrive` subscription). */
export function checkInternalName(kind: string, name: unknown): string {
  return checkName(kind, name, true)
}

/** A subscription name follows the same rules as a topic name. */
export function checkSubscriptionName(name: unknown): string {
  return checkName('subscription', name, false)
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const proto = Object.getPrototypeOf(value) as unknown
  return proto === Object.prototype || proto === null
}

export function checkNumber(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > max) {
    invalid(`${name} must be a number from ${min} to ${max}, got ${String(value)}`, { [name]: value })
  }
  return value
}

export function checkInteger(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    invalid(`${name} must be an integer from ${min} to ${max}, got ${String(value)}`, { [name]: value })
  }
  return value
}

export function checkKnownKeys(what: string, value: Record<string, unknown>, known: readonly string[]): void {
  for (const key of Object.keys(value)) {
    if (!known.includes(key))
      invalid(`unknown ${what} option ${JSON.stringify(key)}; known options: ${known.join(', ')}`)
  }
}

const durabilities: readonly string[] = Object.values(Durability)
const overflows: readonly string[] = Object.values(Overflow)

/** Checks the shape and ranges of a topic config (not whether the driver supports it). */
export function checkTopicConfig(config: unknown): TopicConfig {
  if (config === undefined) return {}
  if (!isPlainObject(config)) invalid('topic config must be a plain object')
  checkKnownKeys('topic', config, [
    'partitions',
    'durability',
    'fsyncIntervalMs',
    'retention',
    'maxMessageBytes',
    'segmentBytes',
    'dedupWindowMs',
    'limits',
    'rateLimit',
    'memoryBytes',
  ])
  const c = config as TopicConfig & Record<string, unknown>
  if (c.partitions !== undefined) checkInteger('partitions', c.partitions, 1, limits.maxPartitions)
  if (c.durability !== undefined && !durabilities.includes(c.durability)) {
    invalid(`durability must be one of ${durabilities.join(', ')}, got ${JSON.stringify(c.durability)}`)
  }
  if (c.fsyncIntervalMs !== undefined) checkInteger('fsyncIntervalMs', c.fsyncIntervalMs, 1, limits.maxFsyncIntervalMs)
  if (c.maxMessageBytes !== undefined)
    checkInteger('maxMessageBytes', c.maxMessageBytes, 1, limits.maxMessageBytesCeiling)
  if (c.segmentBytes !== undefined)
    checkInteger('segmentBytes', c.segmentBytes, limits.minSegmentBytes, limits.maxSegmentBytes)
  if (c.dedupWindowMs !== undefined) checkInteger('dedupWindowMs', c.dedupWindowMs, 0, limits.maxDedupWindowMs)
  if (c.memoryBytes !== undefined) checkInteger('memoryBytes', c.memoryBytes, 64 * 1024, Number.MAX_SAFE_INTEGER)
  if (c.limits !== undefined) {
    const given: unknown = c.limits
    if (!isPlainObject(given)) invalid('limits must be an object like { maxMessages, maxBytes, overflow }')
    checkKnownKeys('limits', given, ['maxMessages', 'maxBytes', 'overflow', 'deadLetter'])
    const l = given as unknown as LimitsConfig
    if (l.maxMessages !== undefined) checkInteger('limits.maxMessages', l.maxMessages, 1, Number.MAX_SAFE_INTEGER)
    if (l.maxBytes !== undefined) checkInteger('limits.maxBytes', l.maxBytes, 1, Number.MAX_SAFE_INTEGER)
    if (l.maxMessages === undefined && l.maxBytes === undefined) invalid('limits needs maxMessages or maxBytes')
    if (l.overflow !== undefined && !overflows.includes(l.overflow)) {
      invalid(`limits.overflow must be one of ${overflows.join(', ')}, got ${JSON.stringify(l.overflow)}`)
    }
    if (l.deadLetter !== undefined) {
      checkTopicName(l.deadLetter)
      if (l.overflow !== Overflow.DropOldest) invalid("limits.deadLetter only applies to overflow 'drop-oldest'")
    }
  }
  if (c.rateLimit !== undefined) {
    const given: unknown = c.rateLimit
    if (!isPlainObject(given)) invalid('rateLimit must be an object like { perSecond, burst, onLimit }')
    checkKnownKeys('rateLimit', given, ['perSecond', 'burst', 'onLimit', 'per'])
    const r = given as Record<keyof RateLimitConfig, unknown>
    checkInteger('rateLimit.perSecond', r.perSecond, 1, 10_000_000)
    if (r.burst !== undefined) checkInteger('rateLimit.burst', r.burst, 0, 10_000_000)
    if (r.onLimit !== undefined && r.onLimit !== OnLimit.Wait && r.onLimit !== OnLimit.Reject) {
      invalid(`rateLimit.onLimit must be 'wait' or 'reject', got ${JSON.stringify(r.onLimit)}`)
    }
    if (r.per !== undefined && r.per !== 'topic' && r.per !== 'producer') {
      invalid(`rateLimit.per must be 'topic' or 'producer', got ${JSON.stringify(r.per)}`)
    }
  }
  if (c.retention !== undefined) {
    if (!isPlainObject(c.retention)) invalid('retention must be an object like { maxAgeMs, maxBytes }')
    checkKnownKeys('retention', c.retention, ['maxAgeMs', 'maxBytes'])
    if (c.retention.maxAgeMs !== undefined)
      checkInteger('retention.maxAgeMs', c.retention.maxAgeMs, 1, Number.MAX_SAFE_INTEGER)
    if (c.retention.maxBytes !== undefined)
      checkInteger('retention.maxBytes', c.retention.maxBytes, 1, Number.MAX_SAFE_INTEGER)
  }
  return c
}

/** Fills a checked config's defaults. */
export function topicInfoFrom(
  name: string,
  config: TopicConfig,
  defaultDurability: Durability,
  createdAt: number,
): TopicInfo {
  return {
    name,
    partitions: config.partitions ?? 1,
    durability: config.durability ?? defaultDurability,
    fsyncIntervalMs: config.fsyncIntervalMs ?? limits.defaultFsyncIntervalMs,
    retention: { maxAgeMs: config.retention?.maxAgeMs ?? null, maxBytes: config.retention?.maxBytes ?? null },
    maxMessageBytes: config.maxMessageBytes ?? limits.defaultMaxMessageBytes,
    segmentBytes: config.segmentBytes ?? limits.defaultSegmentBytes,
    dedupWindowMs: config.dedupWindowMs ?? limits.defaultDedupWindowMs,
    limits: {
      maxMessages: config.limits?.maxMessages ?? null,
      maxBytes: config.limits?.maxBytes ?? null,
      overflow: config.limits?.overflow ?? Overflow.Reject,
      deadLetter: config.limits?.deadLetter ?? null,
    },
    rateLimit:
      config.rateLimit === undefined
        ? null
        : {
            perSecond: config.rateLimit.perSecond,
            burst: config.rateLimit.burst ?? 0,
            onLimit: config.rateLimit.onLimit ?? OnLimit.Wait,
            per: config.rateLimit.per ?? 'topic',
          },
    memoryBytes: config.memoryBytes ?? limits.defaultMemoryBytes,
    createdAt,
  }
}

/**
 * The fields where an existing topic differs from what a caller asked for.
 * Only fields the caller set count: `createTopic('orders')` accepts an
 * existing `orders` of any shape, `createTopic('orders', { partitions: 4 })`
 * conflicts with one of 8 partitions.
 */
export function topicConfigConflicts(existing: TopicInfo, asked: TopicConfig): string[] {
  const conflicts: string[] = []
  const compare = (field: string, want: unknown, have: unknown): void => {
    if (want !== undefined && want !== have)
      conflicts.push(`${field} is ${JSON.stringify(have)}, asked ${JSON.stringify(want)}`)
  }
  compare('partitions', asked.partitions, existing.partitions)
  compare('durability', asked.durability, existing.durability)
  compare('fsyncIntervalMs', asked.fsyncIntervalMs, existing.fsyncIntervalMs)
  compare('maxMessageBytes', asked.maxMessageBytes, existing.maxMessageBytes)
  compare('segmentBytes', asked.segmentBytes, existing.segmentBytes)
  compare('dedupWindowMs', asked.dedupWindowMs, existing.dedupWindowMs)
  compare('memoryBytes', asked.memoryBytes, existing.memoryBytes)
  compare('limits.maxMessages', asked.limits?.maxMessages, existing.limits.maxMessages)
  compare('limits.maxBytes', asked.limits?.maxBytes, existing.limits.maxBytes)
  compare('limits.overflow', asked.limits?.overflow, existing.limits.overflow)
  compare('limits.deadLetter', asked.limits?.deadLetter, existing.limits.deadLetter)
  compare('rateLimit.perSecond', asked.rateLimit?.perSecond, existing.rateLimit?.perSecond)
  compare('rateLimit.burst', asked.rateLimit?.burst, existing.rateLimit?.burst)
  compare('rateLimit.onLimit', asked.rateLimit?.onLimit, existing.rateLimit?.onLimit)
  compare('rateLimit.per', asked.rateLimit?.per, existing.rateLimit?.per)
  compare('retention.maxAgeMs', asked.retention?.maxAgeMs, existing.retention.maxAgeMs)
  compare('retention.maxBytes', asked.retention?.maxBytes, existing.retention.maxBytes)
  return conflicts
}

/** Checks headers and copies them, so a caller changing its object later cannot change a stored message. */
export function checkHeaders(headers: unknown): Headers {
  if (headers === undefined) return {}
  if (!isPlainObject(headers)) invalid('headers must be a plain object of string values')
  for (const [name, value] of Object.entries(headers)) {
    if (name.length === 0) invalid('header names must not be empty')
    if (name === '__proto__') invalid('header name "__proto__" is not allowed')
    if (typeof value !== 'string') invalid(`header ${JSON.stringify(name)} must be a string, got ${typeof value}`)
  }
  return { ...(headers as Headers) }
}

const noPublishOptions: CheckedPublishOptions = Object.freeze({
  key: null,
  id: undefined,
  headers: Object.freeze({}),
  deliverAt: 0,
})

const publishOptionKeys = ['key', 'id', 'headers', 'delayMs', 'deliverAt', 'timeoutMs', 'signal', 'data'] as const

export interface CheckedPublishOptions {
  readonly key: string | null
  readonly id: string | undefined
  readonly headers: Headers
  /** 0 when visible at once. */
  readonly deliverAt: number
}

/** Checks publish options; `now` turns `delayMs` into an absolute `deliverAt`. */
export function checkPublishOptions(options: unknown, now: number): CheckedPublishOptions {
  if (options === undefined) return noPublishOptions
  if (!isPlainObject(options)) invalid('publish options must be a plain object')
  checkKnownKeys('publish', options, publishOptionKeys)
  const o = options as PublishOptions & Record<string, unknown>
  if (o.key !== undefined && o.key !== null && typeof o.key !== 'string') {
    invalid(`key must be a string (or null for none), got ${typeof o.key}`)
  }
  if (o.id !== undefined) {
    if (typeof o.id !== 'string' || o.id.length === 0 || o.id.length > limits.messageIdMaxLength) {
      invalid(`id must be a non-empty string of at most ${limits.messageIdMaxLength} characters`)
    }
  }
  let deliverAt = 0
  if (o.delayMs !== undefined && o.deliverAt !== undefined) invalid('give either delayMs or deliverAt, not both')
  if (o.delayMs !== undefined) {
    checkInteger('delayMs', o.delayMs, 0, Number.MAX_SAFE_INTEGER - now)
    deliverAt = o.delayMs > 0 ? now + o.delayMs : 0
  }
  if (o.deliverAt !== undefined) {
    const at = o.deliverAt instanceof Date ? o.deliverAt.getTime() : o.deliverAt
    if (typeof at !== 'number' || !Number.isFinite(at) || at < 0) {
      invalid('deliverAt must be a Date or milliseconds since the epoch')
    }
    deliverAt = at > now ? Math.floor(at) : 0
  }
  if (o.timeoutMs !== undefined) checkInteger('timeoutMs', o.timeoutMs, 0, 86_400_000)
  if (o.signal !== undefined && !(o.signal instanceof AbortSignal)) invalid('signal must be an AbortSignal')
  return { key: o.key ?? null, id: o.id, headers: checkHeaders(o.headers), deliverAt }
}
