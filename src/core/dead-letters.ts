import type { StoredMessage } from './types.ts'

/** Header names a dead letter carries (the dead-letter topic's copy of a message that ran out of attempts). */
export const DeadLetterHeaders = {
  OriginalTopic: 'sluice-original-topic',
  OriginalPartition: 'sluice-original-partition',
  OriginalOffset: 'sluice-original-offset',
  OriginalTimestamp: 'sluice-original-timestamp',
  Subscription: 'sluice-subscription',
  Attempts: 'sluice-attempts',
  Error: 'sluice-error',
  DeadLetteredAt: 'sluice-dead-lettered-at',
} as const

/** Where a dead letter came from and why it died, as its headers say it. */
export interface DeadLetterOrigin {
  readonly topic: string
  readonly partition: number
  readonly offset: number
  /** When the original was stored. */
  readonly timestamp: number
  /** The subscription that gave up on it; absent when no subscription did (evicted by drop-oldest). */
  readonly subscription?: string
  /** Deliveries it had; absent when it was evicted. */
  readonly attempts?: number
  readonly error: string
  readonly deadLetteredAt: number
}

/**
 * The headers of a dead letter: the original's own headers (any dead-letter
 * headers among them replaced) plus where it came from and why it died. The
 * one way every dead letter (ran out of attempts, evicted) is labelled.
 */
export function deadLetterHeaders(
  headers: Readonly<Record<string, string>>,
  origin: DeadLetterOrigin,
): Record<string, string> {
  const out = withoutDeadLetterHeaders(headers)
  out[DeadLetterHeaders.OriginalTopic] = origin.topic
  out[DeadLetterHeaders.OriginalPartition] = String(origin.partition)
  out[DeadLetterHeaders.OriginalOffset] = String(origin.offset)
  out[DeadLetterHeaders.OriginalTimestamp] = String(origin.timestamp)
  if (origin.subscription !== undefined) out[DeadLetterHeaders.Subscription] = origin.subscription
  if (origin.attempts !== undefined) out[DeadLetterHeaders.Attempts] = String(origin.attempts)
  out[DeadLetterHeaders.Error] = origin.error
  out[DeadLetterHeaders.DeadLetteredAt] = String(origin.deadLetteredAt)
  return out
}

const deadLetterHeaderNames = new Set<string>(Object.values(DeadLetterHeaders))

/** A dead letter's headers without the dead-letter ones: what a redriven copy carries. */
export function withoutDeadLetterHeaders(headers: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [name, value] of Object.entries(headers)) if (!deadLetterHeaderNames.has(name)) out[name] = value
  return out
}

/**
 * The subscription `redrive` consumes a dead-letter topic with (and
 * `deadLetters` lists it by). Reserved (a leading `_`): `subscribe` refuses it.
 */
export const RedriveSubscription = '_redrive'

/** A message in a dead-letter topic, with why it got there. */
export interface DeadLetter<T = unknown> extends StoredMessage<T> {
  readonly originalTopic: string
  readonly originalPartition: number
  readonly originalOffset: number
  readonly subscription: string
  /** Deliveries it had. */
  readonly attempts: number
  /** The last error (the handler's message, or the reason the lease ended). */
  readonly error: string
  readonly deadLetteredAt: number
}

export interface RedriveOptions {
  /** Where to (default: the topic each message came from). */
  readonly to?: string
  /** The most messages per second (default: as fast as possible). */
  readonly ratePerSecond?: number
  /** The most messages to move (default: all there are now). */
  readonly max?: number
  /** The dead-letter topic (default `<topic>.dlq`). */
  readonly deadLetterTopic?: string
}

export interface RedriveResult {
  readonly moved: number
}
