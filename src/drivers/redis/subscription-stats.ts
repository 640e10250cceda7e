import { DeliveryGuarantee, type PartitionStats, type SubscriptionStats, type TopicInfo } from '../../core/types.ts'
import type { RedisDriver } from './redis-driver.ts'

/** The figures of one subscription, read from every partition's state. */
export async function subscriptionStats(
  driver: RedisDriver,
  info: TopicInfo,
  subscription: string,
  partitions: readonly PartitionStats[],
  now: number,
  arrivalRate: number,
): Promise<{ stats: Omit<SubscriptionStats, 'timeToEmptyMs' | 'recommendedConsumers'>; floors: number[] }> {
  let depth = 0
  let inFlight = 0
  let delayed = 0
  let oldest: number | null = null
  const counters = { acked: 0, redeliveries: 0, deadLettered: 0, dropped: 0 }
  const floors: number[] = []
  let ordering = ''
  let delivery = ''
  for (let p = 0; p < info.partitions; p++) {
    const keys = driver.keys.subscription(info.name, p, subscription)
    const [meta, acked, leased, later] = await driver.link.call('subscription stats', (c) =>
      Promise.all([c.hgetall(keys[2]!), c.zcard(keys[3]!), c.hlen(keys[5]!), c.zcount(keys[4]!, `(${now}`, '+inf')]),
    )
    const floor = Number(meta.floor ?? partitions[p]!.startOffset)
    floors.push(floor)
    ordering = meta.ordering ?? ordering
    delivery = meta.delivery ?? delivery
    const end = partitions[p]!.endOffset
    depth += Math.max(0, end - floor - acked)
    inFlight += leased
    delayed += later
    for (const name of Object.keys(counters) as (keyof typeof counters)[]) counters[name] += Number(meta[name] ?? 0)
    if (floor < end) {
      const first = await driver.link.call('XRANGE', (c) => c.xrange(keys[0]!, `0-${floor + 1}`, '+', 'COUNT', 1))
      const fields = first[0]?.[1] ?? []
      const at = fields.indexOf('t')
      if (at >= 0) {
        const t = Number(fields[at + 1])
        oldest = oldest === null ? t : Math.min(oldest, t)
      }
    }
  }
  const consumers = await driver.link.call('ZCOUNT consumers', (c) =>
    c.zcount(driver.keys.consumers(info.name, subscription), `(${now}`, '+inf'),
  )
  return {
    floors,
    stats: {
      subscription,
      ordering: ordering as SubscriptionStats['ordering'],
      delivery: (delivery || DeliveryGuarantee.AtLeastOnce) as SubscriptionStats['delivery'],
      depth,
      inFlight,
      delayed,
      consumers,
      ...counters,
      expiredUnread: 0,
      oldestUnackedAgeMs: oldest === null ? null : Math.max(0, now - oldest),
      arrivalRate,
      processingRate: driver.ackRates.get(`${info.name}\0${subscription}`)?.perSecond(now) ?? 0,
    },
  }
}
