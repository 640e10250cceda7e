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
