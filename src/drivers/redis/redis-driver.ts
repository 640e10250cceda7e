import { systemClock, type Clock } from '../../core/clock.ts'
import type { Capabilities } from '../../core/capabilities.ts'
import type { RedriveOptions, RedriveResult } from '../../core/dead-letters.ts'
import { drainFigures } from '../../core/drain.ts'
import type { AppendOptions, Driver } from '../../core/driver.ts'
import { ErrorCode, sluiceError } from '../../core/errors.ts'
import { uuidv7 } from '../../core/ids.ts'
import { limits } from '../../core/limits.ts'
import { checkMessageSizes } from '../../core/message-size.ts'
import { MovingRate } from '../../core/rate.ts'
import { checkRedrive, redriveDeadLetters } from '../../core/redrive.ts'
import {
  Durability,
  Ordering,
  type AppendRecord,
  type ConsumerConfig,
  type PartitionStats,
  type Receipt,
  type StoredRecord,
  type SubscriptionStats,
  type TopicConfig,
  type TopicInfo,
  type TopicStats,
} from '../../core/types.ts'
import {
  checkInteger,
  checkInternalName,
  checkTopicName,
  topicConfigConflicts,
  topicInfoFrom,
} from '../../core/validate.ts'
import { appendArgs, dedupSpanMs, partitionOf } from './append-args.ts'
import { entryId, num, recordsOf, text } from './entries.ts'
import { RedisKeys } from './keys.ts'
import { RedisLink, Script, type RedisEndpoint } from './link.ts'
import { redisCapabilities, refuseUnsupported, serverDurability } from './capabilities.ts'
import { RedisConsumer } from './redis-consumer.ts'
import { subscriptionStats } from './subscription-stats.ts'
import { appendScript } from './lua/append.ts'
import { peekScript } from './lua/subscription.ts'

/** A topic as registered in Redis: its configuration and the generation that fences a deleted and re-created one. */
export interface Registration {
  readonly info: TopicInfo
  readonly gen: string
}

export const scripts = {
  append: new Script('append', appendScript),
  peek: new Script('peek', peekScript),
}

/** Appends of one topic waiting for the end of this turn of the event loop. */
interface GatheredAppends {
  readonly records: AppendRecord[]
  readonly callers: {
    readonly from: number
    readonly count: number
    readonly resolve: (receipts: Receipt[]) => void
    readonly reject: (err: unknown) => void
  }[]
}

export interface RedisDriverOptions {
  readonly endpoint: RedisEndpoint
  readonly clock?: Clock
  readonly connectTimeoutMs?: number
}

/**
 * Sluice on Redis Streams: one stream per partition, every per-partition
 * change one Lua script (lua/), the policies (validation, backoff,
 * dead-letter labelling, redrive, stats maths) from core. Time comes from
 * the client's clock and is passed to every script.
 */
export class RedisDriver implements Driver {
  readonly capabilities: Capabilities
  readonly keys: RedisKeys
  private readonly registrations = new Map<string, Registration>()
  private readonly publishRates = new Map<string, MovingRate>()
  readonly ackRates = new Map<string, MovingRate>()
  private readonly consumers = new Set<RedisConsumer>()
  private readonly gathering = new Map<string, GatheredAppends>()
  private closed = false

  private constructor(
    readonly link: RedisLink,
    readonly clock: Clock,
    durability: readonly Durability[],
  ) {
    this.keys = new RedisKeys(link.endpoint.prefix)
    this.capabilities = redisCapabilities(link.endpoint.cluster, durability)
  }

  static async connect(options: RedisDriverOptions): Promise<RedisDriver> {
    const link = await RedisLink.connect(options.endpoint, options.connectTimeoutMs ?? 10_000)
    try {
      return new RedisDriver(link, options.clock ?? systemClock, await serverDurability(link))
    } catch (err) {
      await link.close()
      throw err
    }
  }

  private checkOpen(): void {
    if (this.closed) throw sluiceError(ErrorCode.Closed, 'this Redis driver is closed; open a new one')
  }

  /** The topic's registration, from Redis when not known here or when `fresh`. */
  async registration(name: string, fresh = false): Promise<Registration> {
    const known = this.registrations.get(name)
    if (known !== undefined && !fresh) return known
    const json = await this.link.call('HGET topics', (c) => c.hget(this.keys.topics, name))
    if (json === null) {
      this.registrations.delete(name)
      throw sluiceError(
        ErrorCode.TopicNotFound,
        `topic ${JSON.stringify(name)} does not exist; create it with createTopic`,
        {
          details: { topic: name },
        },
      )
    }
    const registration = JSON.parse(json) as Registration
    this.registrations.set(name, registration)
    return registration
  }

  async createTopic(name: string, config: TopicConfig): Promise<TopicInfo> {
    this.checkOpen()
    checkTopicName(name)
    if (config.durability !== undefined && !this.capabilities.durability.includes(config.durability))
      throw sluiceError(
        ErrorCode.Unsupported,
        `durability ${JSON.stringify(config.durability)} is not what this Redis server gives (it gives ${this.capabilities.durability.join(', ')}): 'fsync' needs appendonly yes with appendfsync always, 'interval' appendfsync everysec`,
        { details: { capability: 'durability', durability: config.durability } },
      )
    refuseUnsupported(config)
    const durability = this.capabilities.durability[0] ?? Durability.Memory
    const info = topicInfoFrom(name, config, durability, this.clock.now())
    const registration: Registration = { info, gen: uuidv7() }
    const created = await this.link.call('HSETNX topics', (c) =>
      c.hsetnx(this.keys.topics, name, JSON.stringify(registration)),
    )
    const winner = created === 1 ? registration : await this.registration(name, true)
    if (created !== 1) {
      const conflicts = topicConfigConflicts(winner.info, config)
      if (conflicts.length > 0)
        throw sluiceError(
          ErrorCode.Conflict,
          `topic ${JSON.stringify(name)} already exists with another configuration: ${conflicts.join('; ')}`,
          { details: { topic: name, conflicts } },
        )
    }
    await this.markPartitions(name, winner)
    this.registrations.set(name, winner)
    return winner.info
  }

  /** Writes the topic's generation into each partition, which every append checks. */
  private async markPartitions(name: string, registration: Registration): Promise<void> {
    await Promise.all(
      Array.from({ length: registration.info.partitions }, (_, p) =>
        this.link.call('HSET meta', (c) => c.hset(this.keys.meta(name, p), 'gen', registration.gen)),
      ),
    )
  }

  /** Creates a topic like `like` (same partitions and durability) unless it exists: where dead letters go. */
  async ensureTopic(name: string, like: TopicInfo): Promise<void> {
    try {
      await this.registration(name)
    } catch {
      await this.createTopic(name, { partitions: like.partitions, durability: like.durability }).catch(
        async (err: unknown) => {
          await this.registration(name, true).catch(() => {
            throw err
          })
        },
      )
    }
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    this.checkOpen()
    return (await this.registration(name, true)).info
  }

  async listTopics(): Promise<TopicInfo[]> {
    this.checkOpen()
    const all = await this.link.call('HGETALL topics', (c) => c.hgetall(this.keys.topics))
    return Object.values(all)
      .map((json) => (JSON.parse(json) as Registration).info)
      .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))
  }

  async deleteTopic(name: string): Promise<void> {
    this.checkOpen()
    const registration = await this.registration(name, true)
    const removed = await this.link.call('HDEL topics', (c) => c.hdel(this.keys.topics, name))
    this.registrations.delete(name)
    if (removed === 0) throw sluiceError(ErrorCode.TopicNotFound, `topic ${JSON.stringify(name)} does not exist`)
    const subscriptions = await this.subscriptionNames(name)
    await Promise.all(
      Array.from({ length: registration.info.partitions }, (_, p) =>
        this.link.call('DEL partition', (c) => c.del(...this.keys.allOfPartition(name, p, subscriptions))),
      ),
    )
    for (const s of subscriptions) await this.link.call('DEL consumers', (c) => c.del(this.keys.consumers(name, s)))
    await this.link.call('DEL subs', (c) => c.del(this.keys.subscriptions(name)))
  }

  async subscriptionNames(topic: string): Promise<string[]> {
    return (await this.link.call('SMEMBERS', (c) => c.smembers(this.keys.subscriptions(topic)))).sort()
  }

  async append(topic: string, records: readonly AppendRecord[], _options: AppendOptions = {}): Promise<Receipt[]> {
    this.checkOpen()
    const registration = await this.registration(topic)
    checkMessageSizes(topic, records, registration.info.maxMessageBytes)
    // Copied now: the payloads may be views of the caller's memory, and they are sent a turn later.
    const copied = records.map((record) => ({ ...record, payload: Buffer.from(record.payload) }))
    return this.gather(topic, copied)
  }

  /**
   * Appends asked for in the same turn of the event loop (say 64 `publish()`
   * calls in flight) go to Redis together: one script per partition for all
   * of them, not one per call. Each caller gets its own receipts, or the
   * error of the whole batch.
   */
  private gather(topic: string, records: AppendRecord[]): Promise<Receipt[]> {
    return new Promise((resolve, reject) => {
      let batch = this.gathering.get(topic)
      if (batch === undefined) {
        const fresh: GatheredAppends = { records: [], callers: [] }
        batch = fresh
        this.gathering.set(topic, fresh)
        setImmediate(() => {
          this.gathering.delete(topic)
          this.appendNow(topic, fresh.records).then(
            (receipts) => {
              for (const caller of fresh.callers)
                caller.resolve(receipts.slice(caller.from, caller.from + caller.count))
            },
            (err: unknown) => {
              for (const caller of fresh.callers) caller.reject(err)
            },
          )
        })
      }
      batch.callers.push({ from: batch.records.length, count: records.length, resolve, reject })
      batch.records.push(...records)
    })
  }

  private async appendNow(topic: string, records: readonly AppendRecord[]): Promise<Receipt[]> {
    let registration = await this.registration(topic)
    const byPartition = new Map<number, { index: number; record: AppendRecord }[]>()
    records.forEach((record, index) => {
      const partition = partitionOf(record, registration.info.partitions)
      let list = byPartition.get(partition)
      if (list === undefined) byPartition.set(partition, (list = []))
      list.push({ index, record })
    })
    const receipts: Receipt[] = new Array<Receipt>(records.length)
    for (let attempt = 0; ; attempt++) {
      const gone = await this.appendGroups(topic, registration, byPartition, receipts)
      if (!gone) break
      // Deleted (and maybe re-created) since we looked, or its partitions not marked yet: look again.
      const fresh = await this.registration(topic, true)
      if (fresh.gen === registration.gen) await this.markPartitions(topic, fresh)
      registration = fresh
      if (attempt >= 2)
        throw sluiceError(ErrorCode.Unavailable, `topic ${JSON.stringify(topic)} kept changing while publishing to it`)
    }
    const rate = this.publishRates.get(topic) ?? new MovingRate(this.clock.now())
    this.publishRates.set(topic, rate)
    rate.add(receipts.filter((r) => !r.duplicate).length, this.clock.now())
    return receipts
  }

  /**
   * Appends each partition's records: on one Redis, all partitions in one
   * script (one call, not one a partition: each call's fixed cost is much of
   * an append's); on a cluster, one a partition, as each is a slot of its
   * own. True when a partition said the topic's generation is not ours (then
   * nothing of that call was written).
   */
  private async appendGroups(
    topic: string,
    registration: Registration,
    byPartition: Map<number, { index: number; record: AppendRecord }[]>,
    receipts: Receipt[],
  ): Promise<boolean> {
    const pending = [...byPartition].filter(([, list]) => list.some((item) => receipts[item.index] === undefined))
    const calls = this.link.endpoint.cluster ? pending.map((group) => [group]) : [pending]
    const now = this.clock.now()
    const window = registration.info.dedupWindowMs
    const results = await Promise.all(
      calls.map(async (groups) => {
        const keys: string[] = []
        const args: (string | Buffer | number)[] = [now, groups.length]
        for (const [partition, list] of groups) {
          keys.push(...this.keys.partition(topic, partition))
          args.push(registration.gen, this.keys.wake(topic), partition, list.length, dedupSpanMs(window))
          args.push(
            ...appendArgs(
              list.map((item) => item.record),
              window,
            ),
          )
        }
        const reply = await this.link.run(scripts.append, keys, args)
        if (!Array.isArray(reply) || text(reply[0]) === 'gone') return true
        let at = 0
        for (const [partition, list] of groups)
          for (const { index, record } of list) {
            receipts[index] = {
              id: record.id,
              partition,
              offset: num(reply[at]),
              duplicate: num(reply[at + 1]) === 1,
            }
            at += 2
          }
        return false
      }),
    )
    return results.some((gone) => gone)
  }

  async read(topic: string, partition: number, fromOffset: number, max: number): Promise<StoredRecord[]> {
    this.checkOpen()
    checkInteger('max', max, 1, limits.readMax)
    const { info } = await this.registration(topic)
    checkInteger('partition', partition, 0, info.partitions - 1)
    const log = this.keys.log(topic, partition)
    const reply = await this.link.call('XRANGE', (c) =>
      c.xrangeBuffer(log, entryId(Math.max(0, fromOffset)), '+', 'COUNT', max),
    )
    return recordsOf(reply, partition)
  }

  async openConsumer(topic: string, subscription: string, config: ConsumerConfig): Promise<RedisConsumer> {
    this.checkOpen()
    checkInternalName('subscription', subscription)
    const registration = await this.registration(topic, true)
    if (config.ordering === Ordering.Global && registration.info.partitions !== 1)
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `ordering 'global' needs a topic with 1 partition; topic ${JSON.stringify(topic)} has ${registration.info.partitions}. Use ordering 'partition' or 'key', or a 1-partition topic`,
        { details: { topic, partitions: registration.info.partitions } },
      )
    const consumer = await RedisConsumer.join(this, registration, subscription, config)
    this.consumers.add(consumer)
    consumer.onFinished(() => this.consumers.delete(consumer))
    return consumer
  }

  async peek(topic: string, subscription: string, max: number): Promise<StoredRecord[]> {
    this.checkOpen()
    checkInteger('max', max, 1, limits.readMax)
    const { info } = await this.registration(topic)
    const out: StoredRecord[] = []
    for (let p = 0; p < info.partitions && out.length < max; p++) {
      const reply = await this.link.run(scripts.peek, this.keys.subscription(topic, p, subscription), [
        max - out.length,
      ])
      out.push(...recordsOf(reply, p))
    }
    return out
  }

  async deleteSubscription(topic: string, subscription: string): Promise<void> {
    this.checkOpen()
    const { info } = await this.registration(topic, true)
    const removed = await this.link.call('SREM subs', (c) => c.srem(this.keys.subscriptions(topic), subscription))
    if (removed === 0)
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `topic ${JSON.stringify(topic)} has no subscription ${JSON.stringify(subscription)}`,
        { details: { topic, subscription } },
      )
    await Promise.all(
      Array.from({ length: info.partitions }, async (_, p) => {
        const keys = this.keys.subscription(topic, p, subscription)
        await this.link.call('DEL subscription', (c) => c.del(...keys.slice(2, 12)))
        await this.link.call('HDEL floors', (c) => c.hdel(keys[1]!, subscription))
      }),
    )
    await this.link.call('DEL consumers', (c) => c.del(this.keys.consumers(topic, subscription)))
  }

  redrive(topic: string, options: RedriveOptions, signal?: AbortSignal): Promise<RedriveResult> {
    this.checkOpen()
    return redriveDeadLetters(this, this.clock, checkRedrive(topic, options), signal)
  }

  async stats(topic: string, options: { targetTimeToEmptyMs?: number } = {}): Promise<TopicStats> {
    this.checkOpen()
    const { info } = await this.registration(topic, true)
    const now = this.clock.now()
    const partitions: PartitionStats[] = []
    let published = 0
    for (let p = 0; p < info.partitions; p++) {
      const log = this.keys.log(topic, p)
      const [first, end, bytes, count] = await Promise.all([
        this.link.call('XRANGE', (c) => c.xrange(log, '-', '+', 'COUNT', 1)),
        this.endOffset(topic, p),
        this.link.call('MEMORY USAGE', (c) => c.memory('USAGE', log)),
        this.link.call('HGET published', (c) => c.hget(this.keys.meta(topic, p), 'published')),
      ])
      published += Number(count ?? 0)
      const startOffset = first[0] === undefined ? end : Number(first[0][0].slice(2)) - 1
      partitions.push({ partition: p, startOffset, endOffset: end, bytes: bytes ?? 0 })
    }
    const publishRate = this.publishRates.get(topic)?.perSecond(now) ?? 0
    const subscriptions: SubscriptionStats[] = []
    const floors: number[][] = []
    for (const name of await this.subscriptionNames(topic)) {
      const s = await subscriptionStats(this, info, name, partitions, now, publishRate)
      floors.push(s.floors)
      subscriptions.push({
        ...s.stats,
        ...drainFigures(
          s.stats.depth,
          publishRate,
          s.stats.processingRate,
          s.stats.consumers,
          options.targetTimeToEmptyMs ?? 60_000,
        ),
      })
    }
    const messages = partitions.reduce((sum, p) => sum + (p.endOffset - p.startOffset), 0)
    const backlog = partitions.reduce((sum, p, i) => {
      const lowest = floors.length === 0 ? p.startOffset : Math.min(...floors.map((f) => f[i] ?? p.startOffset))
      return sum + Math.max(0, p.endOffset - Math.max(lowest, p.startOffset))
    }, 0)
    return {
      topic,
      messages,
      bytes: partitions.reduce((sum, p) => sum + p.bytes, 0),
      backlog,
      publishRate,
      published,
      rejected: 0,
      dropped: 0,
      partitions,
      subscriptions,
    }
  }

  /** The next offset a partition will write (the stream remembers its last id, also when trimmed empty). */
  async endOffset(topic: string, partition: number): Promise<number> {
    const log = this.keys.log(topic, partition)
    const info = await this.link.call('XINFO STREAM', (c) => c.xinfo('STREAM', log).catch(() => null))
    if (!Array.isArray(info)) return 0
    const at = info.indexOf('last-generated-id')
    return at < 0 ? 0 : Number(String(info[at + 1]).slice(2))
  }

  /** Resolves once every command sent to Redis has its answer (for tests stepping a fake clock). */
  idle(): Promise<void> {
    return this.link.idle()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled([...this.consumers].map((c) => c.close()))
    await this.link.close()
  }
}
