import type { Capabilities } from '../../core/capabilities.ts'
import { ErrorCode, sluiceError } from '../../core/errors.ts'
import { DeliveryGuarantee, Durability, Ordering, type TopicConfig } from '../../core/types.ts'
import type { RedisLink } from './link.ts'

/**
 * What the Redis driver declares (see docs/drivers.md for why each absent
 * one is absent): all orderings, at-most-once and at-least-once, delays,
 * dedup, idempotent producers, peek and consumption retention everywhere;
 * transactions, and with them exactly-once, only on one server, where one
 * script can reach every key.
 */
export function redisCapabilities(cluster: boolean, durability: readonly Durability[]): Capabilities {
  const transactions = !cluster
  return {
    durability,
    orderings: Object.values(Ordering),
    deliveries: transactions
      ? Object.values(DeliveryGuarantee)
      : [DeliveryGuarantee.AtMostOnce, DeliveryGuarantee.AtLeastOnce],
    delayedDelivery: true,
    overflow: [],
    limitBy: [],
    rateLimitScopes: [],
    dedupById: true,
    idempotentProducers: true,
    transactions,
    peek: true,
    consumptionRetention: true,
    retention: [],
  }
}

/**
 * What this driver does not do yet is refused at declaration, never accepted
 * and ignored: backlog bounds and rate limits need counters across a topic's
 * partitions, which live on different cluster slots (no atomic check spans
 * them); age and size retention would trim messages subscriptions still
 * hold. (Core refuses these first, from the capabilities; this is the
 * driver's own guard.)
 */
export function refuseUnsupported(config: TopicConfig): void {
  const refuse = (capability: string, what: string): never => {
    throw sluiceError(
      ErrorCode.Unsupported,
      `${what} is not available on Redis; use the embedded engine (file:) or a broker in front of it for it`,
      { details: { capability } },
    )
  }
  if (config.limits !== undefined) refuse('overflow', 'a backlog bound (limits)')
  if (config.rateLimit !== undefined) refuse('rateLimitScopes', 'a publish rate limit (rateLimit)')
  if (config.retention?.maxAgeMs !== undefined) refuse('retention', 'retention by age (retention.maxAgeMs)')
  if (config.retention?.maxBytes !== undefined) refuse('retention', 'retention by size (retention.maxBytes)')
}

/**
 * What an acknowledged publish survives, as the server is configured: with
 * `appendfsync always` it is fsynced before Redis answers (`fsync`); with
 * `everysec` a crash of the machine can lose about a second (`interval`);
 * without the append-only file only what Redis holds in memory (`memory`).
 */
export async function serverDurability(link: RedisLink): Promise<Durability[]> {
  try {
    const aof = await link.call('CONFIG GET', (c) => c.config('GET', 'appendonly') as Promise<string[]>)
    const fsync = await link.call('CONFIG GET', (c) => c.config('GET', 'appendfsync') as Promise<string[]>)
    if (aof[1] !== 'yes') return [Durability.Memory]
    if (fsync[1] === 'always') return [Durability.Fsync, Durability.Interval, Durability.Memory]
    if (fsync[1] === 'everysec') return [Durability.Interval, Durability.Memory]
    return [Durability.Memory]
  } catch {
    // CONFIG may be disabled (managed Redis): promise only what memory gives.
    return [Durability.Memory]
  }
}
