/** The public surface of Sluice. Everything not exported here is internal. */
export { open, type OpenOptions } from './open.ts'
export { Sluice, type SluiceOptions } from './core/sluice.ts'
export { Subscription, type CloseOptions } from './core/subscription.ts'
export type { Message, Handler, TransactionMessage } from './core/message.ts'
export type { SubscribeOptions } from './core/subscribe-options.ts'
export type { BackoffOptions } from './core/backoff.ts'
export { DeadLetterHeaders, type DeadLetter, type RedriveOptions, type RedriveResult } from './core/dead-letters.ts'
export { closeOnSignals, type ShutdownOptions } from './core/shutdown.ts'
export { Idempotency, type IdempotencyOptions, type OnceOptions, type OnceResult } from './core/idempotency.ts'
export { type RetryPolicy } from './core/retry.ts'
export {
  ErrorCode,
  SluiceError,
  QueueFullError,
  RateLimitedError,
  errorTable,
  type SluiceErrorOptions,
} from './core/errors.ts'
export { PayloadFormat, type Codec } from './core/codec.ts'
export { murmur2, partitionForKey } from './core/partition.ts'
export type { Clock } from './core/clock.ts'
export type { Driver, DriverConsumer, Capabilities } from './core/driver.ts'
export {
  capabilityMeanings,
  capabilityNames,
  knownRuntimes,
  LimitMeasure,
  RateLimitScope,
  RetentionKind,
  type CapabilityName,
  type KnownRuntime,
} from './core/capabilities.ts'
export {
  DeliveryGuarantee,
  Durability,
  Ordering,
  StartAt,
  type PartitionStats,
  type SubscriptionStats,
  type TopicStats,
  type CommitResult,
  type TransactionOutput,
  type Headers,
  type OutgoingMessage,
  type PublishOptions,
  type Receipt,
  type RetentionConfig,
  type StoredMessage,
  type TopicConfig,
  type TopicInfo,
} from './core/types.ts'
