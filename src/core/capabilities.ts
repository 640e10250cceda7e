import type { DeliveryGuarantee, Durability, Ordering, Overflow } from './types.ts'

/**
 * What a runtime can do. Every feature a driver may lack is declared here, so
 * that core refuses an unsupported combination once, at declaration
 * (`createTopic`, `subscribe`, `publish`), with UNSUPPORTED naming the
 * capability, instead of a driver half-doing it.
 */
export interface Capabilities {
  /** Durability modes a topic may ask for. */
  readonly durability: readonly Durability[]
  readonly orderings: readonly Ordering[]
  readonly deliveries: readonly DeliveryGuarantee[]
  /** publish with delayMs / deliverAt. */
  readonly delayedDelivery: boolean
  /** Overflow modes a topic's `limits` may ask for; empty: backlog bounds are not available. */
  readonly overflow: readonly Overflow[]
  /** What `limits` may bound: the backlog's message count, its stored bytes. */
  readonly limitBy: readonly ('maxMessages' | 'maxBytes')[]
  /** Scopes a topic's `rateLimit.per` may ask for; empty: no rate limits. */
  readonly rateLimitScopes: readonly ('topic' | 'producer')[]
  /** A message id repeated within the topic's dedupWindowMs is stored once. */
  readonly dedupById: boolean
  /** A publish retried after a lost answer is recognised by its producer sequence and stored once. */
  readonly idempotentProducers: boolean
  /** `msg.ack({ publish })`: acknowledge and publish in one atomic step. */
  readonly transactions: boolean
  /** Listing unacknowledged messages without leasing them (`deadLetters`, `consume --peek`). */
  readonly peek: boolean
  /** Messages every subscription has acknowledged are deleted (the default retention). */
  readonly consumptionRetention: boolean
  /** Age and size retention a topic's `retention` may ask for. */
  readonly retention: readonly ('maxAgeMs' | 'maxBytes')[]
}
