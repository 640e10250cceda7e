import type { PayloadFormat } from './codec.ts'

/**
 * The public types of Sluice. Words follow SEMANTICS.md: topic, partition,
 * message, offset, key, subscription, consumer, lease, ack, nack, receipt.
 */

export const Durability = { Fsync: 'fsync', Interval: 'interval', Memory: 'memory' } as const
/**
 * When a publish counts as stored:
 * - `fsync`: on disk and fsynced (concurrent publishes share one fsync);
 * - `interval`: written to the OS, fsynced every `fsyncIntervalMs` (a machine crash can lose that interval);
 * - `memory`: held in memory, gone on restart.
 */
export type Durability = (typeof Durability)[keyof typeof Durability]

/** Headers: a plain object of string values. */
export type Headers = Record<string, string>

export interface RetentionConfig {
  /** Delete whole segments whose newest message is older than this, read or not. */
  readonly maxAgeMs?: number
  /** Delete the oldest whole segments while a partition holds more than this, read or not. */
  readonly maxBytes?: number
}

/** What `createTopic` accepts; every field is optional and has a default. */
export interface TopicConfig {
  /** Fixed at creation. Default 1; at most 1024. */
  readonly partitions?: number
  /** Default `fsync` on disk (`memory` on a `memory:` engine). */
  readonly durability?: Durability
  /** With `interval` durability: how often the log is fsynced. Default 100. */
  readonly fsyncIntervalMs?: number
  /** Age/size retention (stream semantics). By default messages are kept until every subscription has acknowledged them. */
  readonly retention?: RetentionConfig
  /** The largest message (payload + key + headers), in bytes. Default 1 MiB, at most 64 MiB. */
  readonly maxMessageBytes?: number
  /** Size at which a partition's log rolls to a new segment. Default 64 MiB. */
  readonly segmentBytes?: number
  /**
   * A message published with an `id` already published to this topic within
   * this window is stored once (the repeat gets the first receipt, marked
   * duplicate). Default 120000 (2 minutes); 0 turns it off.
   */
  readonly dedupWindowMs?: number
  /** Bounds the backlog (see LimitsConfig). None by default. */
  readonly limits?: LimitsConfig
  /** Limits the publish rate (see RateLimitConfig). None by default. */
  readonly rateLimit?: RateLimitConfig
  /**
   * `memory` durability: bytes of messages kept in memory; older messages
   * spill to disk files (gone on restart). Default 64 MiB.
   */
  readonly memoryBytes?: number
}

export const Overflow = { Reject: 'reject', Block: 'block', DropOldest: 'drop-oldest' } as const
/** What a publish into a full backlog does: throw QUEUE_FULL, wait for room, or evict the oldest messages. */
export type Overflow = (typeof Overflow)[keyof typeof Overflow]

/**
 * A bound on the backlog: messages retained that at least one subscription
 * has not acknowledged (all retained messages while the topic has no
 * subscription), counted from each partition's oldest unacknowledged message.
 */
export interface LimitsConfig {
  readonly maxMessages?: number
  /** Bytes as stored (the log's record size, payload included). */
  readonly maxBytes?: number
  /** Default `reject`. */
  readonly overflow?: Overflow
  /** With `drop-oldest`: a topic that receives the evicted messages (else they are only counted). */
  readonly deadLetter?: string
}

export const OnLimit = { Wait: 'wait', Reject: 'reject' } as const
export type OnLimit = (typeof OnLimit)[keyof typeof OnLimit]

/** At most `perSecond + burst` messages accepted in any 1-second window. */
export interface RateLimitConfig {
  readonly perSecond: number
  /** Default 0. */
  readonly burst?: number
  /** Default `wait`: the publish is delayed; `reject` throws RATE_LIMITED with retryAfterMs. */
  readonly onLimit?: OnLimit
  /** `topic` (default): one window for all producers; `producer`: one window per producer. */
  readonly per?: 'topic' | 'producer'
}

/** A topic as it exists: its full configuration with defaults filled in. */
export interface TopicInfo {
  readonly name: string
  readonly partitions: number
  readonly durability: Durability
  readonly fsyncIntervalMs: number
  readonly retention: { readonly maxAgeMs: number | null; readonly maxBytes: number | null }
  readonly maxMessageBytes: number
  readonly segmentBytes: number
  readonly dedupWindowMs: number
  readonly limits: {
    readonly maxMessages: number | null
    readonly maxBytes: number | null
    readonly overflow: Overflow
    readonly deadLetter: string | null
  }
  readonly rateLimit: {
    readonly perSecond: number
    readonly burst: number
    readonly onLimit: OnLimit
    readonly per: 'topic' | 'producer'
  } | null
  readonly memoryBytes: number
  /** Milliseconds since the epoch. */
  readonly createdAt: number
}

export interface PublishOptions {
  /** Chooses the partition (Kafka's murmur2) and orders messages under `ordering: 'key'`. */
  readonly key?: string | null
  /**
   * The message id; a time-ordered UUIDv7 is generated when absent. Stored
   * as given on every runtime; a repeat within the topic's dedupWindowMs is
   * stored once only where the runtime has `dedupById`.
   */
  readonly id?: string
  readonly headers?: Headers
  /** Invisible to subscriptions for this long. Any value (0 too) needs `delayedDelivery`, else UNSUPPORTED. */
  readonly delayMs?: number
  /** Invisible to subscriptions until then (ms since the epoch or a Date). Needs `delayedDelivery`, as delayMs. */
  readonly deliverAt?: number | Date
  /** How long to wait for room (`block` overflow) or a rate slot (`wait`). Default 30000. */
  readonly timeoutMs?: number
  /** Aborts such a wait. */
  readonly signal?: AbortSignal
}

/** One message of `publishBatch`. */
export interface OutgoingMessage<T = unknown> extends PublishOptions {
  readonly data: T
}

/** What a stored publish resolves to. */
export interface Receipt {
  readonly id: string
  readonly partition: number
  readonly offset: number
  /** True when this publish was recognised as a retry of one already stored; the fields are the first one's. */
  readonly duplicate: boolean
}

/** A message as stored in a partition. */
export interface StoredMessage<T = unknown> {
  readonly id: string
  readonly key: string | null
  readonly data: T
  readonly headers: Headers
  readonly topic: string
  readonly partition: number
  readonly offset: number
  /** When it was stored, ms since the epoch. */
  readonly timestamp: number
  /** When it becomes visible to subscriptions (ms since the epoch), if delayed. */
  readonly deliverAt: number | null
}

/**
 * A message as the driver stores it: payload still encoded. Crosses the
 * driver boundary; core encodes before and decodes after.
 */
export interface AppendRecord {
  readonly id: string
  readonly key: string | null
  readonly headers: Headers
  readonly payload: Uint8Array
  readonly format: PayloadFormat
  /** 0 when visible at once. */
  readonly deliverAt: number
  /** With `sequence`: names this append so a retry of it is recognised (idempotent producer). */
  readonly producerId?: string
  readonly sequence?: number
  /** The producer chose `id`: a repeat within the topic's dedupWindowMs is the same message. */
  readonly idFromProducer?: boolean
}

export interface StoredRecord extends AppendRecord {
  readonly partition: number
  readonly offset: number
  readonly timestamp: number
}

export const Ordering = { None: 'none', Key: 'key', Partition: 'partition', Global: 'global' } as const
/**
 * Per subscription:
 * - `none`: no order, every message at once;
 * - `key` (default): one message per key at a time, in offset order (keyless messages unordered); keys in parallel;
 * - `partition`: one message per partition at a time, in offset order;
 * - `global`: one message at a time for the whole topic, in publish order (1-partition topics only).
 * A redelivered message goes before any later message of its key, partition or topic.
 */
export type Ordering = (typeof Ordering)[keyof typeof Ordering]

export const DeliveryGuarantee = {
  AtMostOnce: 'at-most-once',
  AtLeastOnce: 'at-least-once',
  ExactlyOnce: 'exactly-once',
} as const
/**
 * - `at-most-once`: acknowledged when handed to a consumer; never redelivered;
 * - `at-least-once` (default): acknowledged by the handler's success; redelivered after a failure, a nack,
 *   an expired lease or a lost consumer, with backoff, until `maxAttempts`, then dead-lettered;
 * - `exactly-once` (honestly: effectively once): at-least-once whose acknowledgements are fsynced before
 *   they resolve, used with `msg.ack({ publish })` (acknowledge and publish in one transaction), idempotent
 *   publishing, and `sluice.idempotency()` for side effects outside Sluice.
 */
export type DeliveryGuarantee = (typeof DeliveryGuarantee)[keyof typeof DeliveryGuarantee]

export const StartAt = { Earliest: 'earliest', Latest: 'latest' } as const
/** Where a new subscription starts; only matters when it is created. */
export type StartAt = (typeof StartAt)[keyof typeof StartAt]

/** A consumer's settings, resolved by core and handed to the driver. */
export interface ConsumerConfig {
  readonly delivery: DeliveryGuarantee
  readonly ordering: Ordering
  readonly startAt: StartAt
  /** A lease not extended or acknowledged within this is lost and the message offered again. */
  readonly ackTimeoutMs: number
  /** The longest a lease may be extended to, from its first grant. */
  readonly maxLeaseMs: number
  /** Deliveries in total (not retries) before dead-lettering. */
  readonly maxAttempts: number
  readonly backoff: import('./backoff.ts').Backoff
  /** Topic for messages that ran out of attempts; null drops them (counted). */
  readonly deadLetter: string | null
}

/** A record handed to a consumer under a lease. */
export interface LeasedRecord extends StoredRecord {
  /** 1 for the first delivery. */
  readonly attempt: number
}

/** Messages one transaction publishes to one topic. */
export interface TransactionOutput {
  readonly topic: string
  readonly records: readonly AppendRecord[]
}

/** What a commit (acknowledge + publish) did. */
export interface CommitResult {
  /** False when the lease was lost: nothing was acknowledged and nothing published. */
  readonly acked: boolean
  /** Receipts of the published messages, per output, in order. */
  readonly receipts: readonly (readonly Receipt[])[]
}

/** Names one lease: the delivery attempt fences it, so a stale ack never acknowledges a newer delivery. */
export interface LeaseRef {
  readonly partition: number
  readonly offset: number
  readonly attempt: number
}

export interface PartitionStats {
  readonly partition: number
  /** First offset still stored. */
  readonly startOffset: number
  /** Next offset to be written. */
  readonly endOffset: number
  readonly bytes: number
}

/** Figures of one subscription. Counters count since this process started. */
export interface SubscriptionStats {
  readonly subscription: string
  readonly ordering: Ordering
  readonly delivery: DeliveryGuarantee
  /** Stored messages not yet acknowledged (including in flight and delayed). */
  readonly depth: number
  /** Messages leased to consumers right now. */
  readonly inFlight: number
  /** Delayed messages not yet visible. */
  readonly delayed: number
  readonly consumers: number
  readonly acked: number
  readonly redeliveries: number
  readonly deadLettered: number
  /** Ran out of attempts with `deadLetter: false`. */
  readonly dropped: number
  /** Deleted by age or size retention before this subscription acknowledged them. */
  readonly expiredUnread: number
  /** Age of the oldest message not yet acknowledged, from its store time; null when none. */
  readonly oldestUnackedAgeMs: number | null
  /** Messages arriving for this subscription per second (every subscription receives every message: the topic's publish rate). */
  readonly arrivalRate: number
  /** Acknowledgements per second. Rates are moving averages over the last minute. */
  readonly processingRate: number
  /** depth / processingRate, in ms; null when nothing is being processed and depth > 0 (it would never empty). */
  readonly timeToEmptyMs: number | null
  /**
   * Consumers needed to keep up with arrivals and empty the backlog within the
   * target time to empty (the `targetTimeToEmptyMs` asked of stats, default
   * 60000), at the measured rate per consumer; null before anything was processed.
   */
  readonly recommendedConsumers: number | null
}

export interface TopicStats {
  readonly topic: string
  /** Messages stored now. */
  readonly messages: number
  readonly bytes: number
  /** Messages retained that some subscription has not acknowledged (all retained ones without subscriptions). */
  readonly backlog: number
  /** Messages accepted per second (moving average over the last minute). */
  readonly publishRate: number
  /** Since the process started: messages published, refused (QUEUE_FULL, RATE_LIMITED, timed out) and evicted (drop-oldest). */
  readonly published: number
  readonly rejected: number
  readonly dropped: number
  readonly partitions: readonly PartitionStats[]
  readonly subscriptions: readonly SubscriptionStats[]
}
