/** The public surface of Sluice. Everything not exported here is internal. */
export { open, type OpenOptions } from './open.ts'
export { Sluice, type SluiceOptions } from './core/sluice.ts'
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
export type { Driver, Capabilities } from './core/driver.ts'
export {
  Durability,
  type Headers,
  type OutgoingMessage,
  type PublishOptions,
  type Receipt,
  type RetentionConfig,
  type StoredMessage,
  type TopicConfig,
  type TopicInfo,
} from './core/types.ts'
