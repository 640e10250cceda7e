/**
 * Where the Redis driver keeps things: the one place key names are made.
 * Every key of one partition (its log, its dedup table, each
 * subscription's state on it) carries the hash tag `{<topic>:<partition>}`,
 * so all of them live in one cluster slot and one Lua script can change
 * them atomically. Names are safe inside a tag: topic and subscription names
 * hold only letters, digits, `.`, `_` and `-`.
 */
export class RedisKeys {
  constructor(readonly prefix: string) {}

  /** Hash: topic name -> its registration (TopicInfo and generation), as JSON. */
  get topics(): string {
    return `${this.prefix}:topics`
  }

  /** Set: the subscriptions a topic has. */
  subscriptions(topic: string): string {
    return `${this.prefix}:subs:${topic}`
  }

  /** Zset: live consumers of a subscription, scored by when they were last seen. */
  consumers(topic: string, subscription: string): string {
    return `${this.prefix}:consumers:${topic}:${subscription}`
  }

  /** Pub/sub channel told when a topic has something new to offer. */
  wake(topic: string): string {
    return `${this.prefix}:wake:${topic}`
  }

  private tag(topic: string, partition: number): string {
    return `${this.prefix}:{${topic}:${partition}}`
  }

  /** KEYS of the append script: log, the two dedup hashes used in turns, meta. */
  partition(topic: string, partition: number): string[] {
    const t = this.tag(topic, partition)
    return [`${t}:log`, `${t}:ids`, `${t}:ids2`, `${t}:meta`]
  }

  log(topic: string, partition: number): string {
    return `${this.tag(topic, partition)}:log`
  }

  meta(topic: string, partition: number): string {
    return `${this.tag(topic, partition)}:meta`
  }

  /** KEYS of the subscription scripts, in the order `subKeys` in lua/prelude.ts reads them. */
  subscription(topic: string, partition: number, subscription: string): string[] {
    const t = this.tag(topic, partition)
    const s = `${t}:s:${subscription}`
    return [
      `${t}:log`,
      `${t}:floors`,
      `${s}:meta`,
      `${s}:acked`,
      `${s}:ready`,
      `${s}:lease`,
      `${s}:deadlines`,
      `${s}:attempts`,
      `${s}:busy`,
      `${s}:blocked`,
      `${s}:dead`,
      `${s}:why`,
      `${t}:trim`,
    ]
  }

  /** Every key a partition has, its subscriptions' included. */
  allOfPartition(topic: string, partition: number, subscriptions: readonly string[]): string[] {
    const t = this.tag(topic, partition)
    const keys = [...this.partition(topic, partition), `${t}:floors`, `${t}:trim`]
    for (const s of subscriptions) keys.push(...this.subscription(topic, partition, s).slice(2, 12))
    return keys
  }
}
