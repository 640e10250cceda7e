import { checkCapabilities, type Capabilities } from './capabilities.ts'
import { systemClock, type Clock } from './clock.ts'
import { decodePayload, encodePayload, type Codec } from './codec.ts'
import type { AppendOptions, Driver } from './driver.ts'
import { ErrorCode, hasCode, SluiceError, sluiceError } from './errors.ts'
import { uuidv7 } from './ids.ts'
import { Idempotency, type IdempotencyOptions } from './idempotency.ts'
import { PublishGather } from './publish-gather.ts'
import { checkRetryPolicy, defaultPublishRetry, isTransient, retrying, type RetryPolicy } from './retry.ts'
import { limits } from './limits.ts'
import type {
  AppendRecord,
  OutgoingMessage,
  PublishOptions,
  Receipt,
  StoredMessage,
  StoredRecord,
  TopicConfig,
  TopicInfo,
  TopicStats,
  TransactionOutput,
} from './types.ts'
import {
  checkInteger,
  checkPublishOptions,
  checkSubscriptionName,
  checkTopicConfig,
  checkTopicName,
  invalid,
} from './validate.ts'
import type { Handler, TransactionMessage } from './message.ts'
import { checkSubscribeOptions, type SubscribeOptions } from './subscribe-options.ts'
import { Subscription, type CloseOptions } from './subscription.ts'
import { checkRedrive } from './redrive.ts'
import {
  DeadLetterHeaders,
  RedriveSubscription,
  type DeadLetter,
  type RedriveOptions,
  type RedriveResult,
} from './dead-letters.ts'

export interface SluiceOptions {
  /** Encodes every payload (default: bytes as bytes, anything else as JSON). */
  readonly codec?: Codec
  /** Publishing to an unknown topic creates it with default settings instead of failing with TOPIC_NOT_FOUND. */
  readonly autoCreateTopics?: boolean
  readonly clock?: Clock
  /** Told about failures that consumers handle themselves (a refused ack, a failed lease call). */
  readonly onError?: (err: unknown) => void
  /**
   * Opt-in: retry publishes refused by backpressure (QUEUE_FULL, RATE_LIMITED)
   * with capped exponential backoff and jitter, waiting at least the error's
   * retryAfterMs. Off by default: a full queue is news the caller may want.
   */
  readonly backpressureRetry?: Partial<RetryPolicy>
  /**
   * How publishes retry transient failures (STORAGE_FULL, TIMEOUT, UNAVAILABLE):
   * capped exponential backoff with jitter, the same producer sequence on every
   * attempt so that a retry is never stored twice. Default 5 attempts from 100 ms
   * to 5 s; false turns retrying off.
   */
  readonly publishRetry?: Partial<RetryPolicy> | false
}

/**
 * The public API, the same on every driver: `open()` returns one. Checks
 * arguments, encodes payloads and gives ids here, so every driver behaves alike.
 *
 * After `close()`, every call throws CLOSED.
 */
export class Sluice {
  private closed = false
  private readonly clock: Clock
  /** This instance's producer id: with a sequence per message, it names every append so that a retry is recognised. */
  readonly producerId = uuidv7()
  /**
   * The next sequence per topic (the engine tracks sequences per topic and producer): the messages one
   * turn publishes to a topic are consecutive, so the client can send them as one run.
   */
  private readonly sequences = new Map<string, number>()
  private readonly gather = new PublishGather(
    (topic, records) => this.driver.append(topic, records),
    (topic, records) => this.append(topic, records),
  )
  private readonly publishRetry: RetryPolicy | null
  private readonly backpressureRetry: RetryPolicy | null
  private readonly subscriptions = new Set<{ close(options?: CloseOptions): Promise<void> }>()

  constructor(
    private readonly driver: Driver,
    private readonly options: SluiceOptions = {},
  ) {
    this.clock = options.clock ?? systemClock
    this.publishRetry = checkRetryPolicy(options.publishRetry, defaultPublishRetry)
    this.backpressureRetry =
      options.backpressureRetry === undefined ? null : checkRetryPolicy(options.backpressureRetry, defaultPublishRetry)
  }

  /**
   * What this runtime can do (for a broker client: what its broker's runtime
   * can). A call that asks for anything else fails with UNSUPPORTED naming
   * the capability. `sluice check --url <url>` prints the same table.
   */
  capabilities(): Capabilities {
    this.checkOpen()
    return this.driver.capabilities
  }

  private checkOpen(): void {
    if (this.closed) throw sluiceError(ErrorCode.Closed, 'this Sluice instance is closed; open a new one')
  }

  /**
   * Creates a topic. Idempotent: if it exists and every field given here
   * matches, resolves with the existing topic; a different value for a given
   * field throws CONFLICT. Throws INVALID_ARGUMENT for a bad name or config,
   * UNSUPPORTED for what the runtime does not have (see `capabilities()`: a
   * durability, a limit and its overflow mode, a rate-limit scope, a kind of
   * retention, a dedup window).
   */
  async createTopic(name: string, config: TopicConfig = {}): Promise<TopicInfo> {
    this.checkOpen()
    checkTopicName(name)
    const checked = checkTopicConfig(config)
    checkCapabilities(this.driver.capabilities, { topic: checked })
    return this.driver.createTopic(name, checked)
  }

  /** The topic's configuration; TOPIC_NOT_FOUND when absent. */
  async describeTopic(name: string): Promise<TopicInfo> {
    this.checkOpen()
    return this.driver.describeTopic(checkTopicName(name))
  }

  /** Every topic, sorted by name. */
  async listTopics(): Promise<TopicInfo[]> {
    this.checkOpen()
    return this.driver.listTopics()
  }

  /** Deletes a topic with its messages and subscriptions; TOPIC_NOT_FOUND when absent. */
  async deleteTopic(name: string): Promise<void> {
    this.checkOpen()
    return this.driver.deleteTopic(checkTopicName(name))
  }

  private toRecord(topic: string, data: unknown, options: PublishOptions | undefined): AppendRecord {
    const now = this.clock.now()
    const checked = checkPublishOptions(options, now)
    // Only a delay asks anything of the runtime: the common publish pays for no more than these two tests.
    if (options?.delayMs !== undefined || options?.deliverAt !== undefined)
      checkCapabilities(this.driver.capabilities, { publish: options })
    const { payload, format } = encodePayload(data, this.options.codec)
    return {
      id: checked.id ?? uuidv7(now),
      idFromProducer: checked.id !== undefined,
      key: checked.key,
      headers: checked.headers,
      payload,
      format,
      deliverAt: checked.deliverAt,
      producerId: this.producerId,
      sequence: this.nextSequence(topic),
    }
  }

  private nextSequence(topic: string): number {
    const sequence = this.sequences.get(topic) ?? 0
    this.sequences.set(topic, sequence + 1)
    return sequence
  }

  private append(topic: string, records: AppendRecord[], options: AppendOptions = {}): Promise<Receipt[]> {
    // The first attempt goes straight to the driver; only a failure pays for the retry loop.
    return this.driver
      .append(topic, records, options)
      .catch((err: unknown) => this.appendAfterFailure(topic, records, options, err))
  }

  /**
   * A publish failed: create the topic if that is wanted, and retry transient
   * failures with the same records (same producer id and sequences), so that
   * a retry is never stored twice.
   */
  private async appendAfterFailure(
    topic: string,
    records: AppendRecord[],
    options: AppendOptions,
    err: unknown,
  ): Promise<Receipt[]> {
    if (this.options.autoCreateTopics === true && hasCode(err, ErrorCode.TopicNotFound)) {
      await this.driver.createTopic(topic, {})
      return this.append(topic, records, options)
    }
    // A wait for room or a rate slot ran out (the caller's timeoutMs, or the default): retrying would outlive it.
    if (hasCode(err, ErrorCode.Timeout) && (options.timeoutMs !== undefined || err.details['waitedFor'] !== undefined))
      throw err
    const backpressure = hasCode(err, ErrorCode.QueueFull) || hasCode(err, ErrorCode.RateLimited)
    const policy = backpressure ? this.backpressureRetry : this.publishRetry
    if (policy === null || policy.maxAttempts <= 1 || !(backpressure || isTransient(err))) throw err
    const rest = { ...policy, maxAttempts: policy.maxAttempts - 1 }
    const hint =
      err instanceof SluiceError && typeof err.details['retryAfterMs'] === 'number' ? err.details['retryAfterMs'] : 0
    await new Promise<void>((resolve) => this.clock.setTimer(resolve, Math.max(rest.initialMs, hint), true))
    return retrying(
      () => this.driver.append(topic, records, options),
      rest,
      this.clock,
      (e) => (backpressure ? hasCode(e, ErrorCode.QueueFull) || hasCode(e, ErrorCode.RateLimited) : isTransient(e)),
    )
  }

  /**
   * Publishes one message and resolves with its receipt once it is stored as
   * the topic's durability says. The partition comes from the key (Kafka's
   * murmur2), round-robin without one. Throws TOPIC_NOT_FOUND,
   * MESSAGE_TOO_LARGE (nothing stored), INVALID_ARGUMENT, STORAGE_FULL,
   * UNSUPPORTED (delayMs or deliverAt on a runtime without delayed delivery).
   */
  async publish(topic: string, data: unknown, options?: PublishOptions): Promise<Receipt> {
    this.checkOpen()
    checkTopicName(topic)
    const receipts = await this.appendGathered(topic, [this.toRecord(topic, data, options)], waitOptions(options))
    return receipts[0]!
  }

  /**
   * Publishes several messages in one call; all are checked before any is
   * stored. Resolves with their receipts in order.
   */
  async publishBatch(
    topic: string,
    messages: readonly OutgoingMessage[],
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<Receipt[]> {
    this.checkOpen()
    checkTopicName(topic)
    const given: unknown = messages
    if (!Array.isArray(given))
      throw sluiceError(ErrorCode.InvalidArgument, 'publishBatch takes an array of { data, key?, id?, headers? }')
    if (given.length === 0) return []
    const records = given.map((message: unknown, i) => {
      if (typeof message !== 'object' || message === null || !('data' in message)) {
        throw sluiceError(ErrorCode.InvalidArgument, `message ${i} of the batch has no data field`)
      }
      return this.toRecord(topic, message.data, message as OutgoingMessage)
    })
    return this.appendGathered(topic, records, waitOptions(options))
  }

  /** Publishes of this turn travel together (see PublishGather); one with its own deadline or signal goes alone. */
  private appendGathered(topic: string, records: AppendRecord[], wait: AppendOptions): Promise<Receipt[]> {
    if (wait.timeoutMs === undefined && wait.signal === undefined) return this.gather.add(topic, records)
    this.gather.flushTopic(topic)
    return this.append(topic, records, wait)
  }

  /**
   * Reads up to `max` stored messages of one partition from `fromOffset`
   * (from the first retained offset if older), without any subscription: for
   * tools and tests. Delayed messages are included, with `deliverAt`.
   */
  async read<T = unknown>(topic: string, partition: number, fromOffset = 0, max = 100): Promise<StoredMessage<T>[]> {
    this.checkOpen()
    checkTopicName(topic)
    checkInteger('max', max, 1, limits.readMax)
    const records = await this.driver.read(topic, partition, fromOffset, max)
    return records.map((record) => this.toMessage<T>(topic, record))
  }

  private toMessage<T>(topic: string, record: StoredRecord): StoredMessage<T> {
    return {
      id: record.id,
      key: record.key,
      data: decodePayload(record.payload, record.format, this.options.codec) as T,
      headers: record.headers,
      topic,
      partition: record.partition,
      offset: record.offset,
      timestamp: record.timestamp,
      deliverAt: record.deliverAt === 0 ? null : record.deliverAt,
    }
  }

  /**
   * Subscribes as one more consumer of `subscription` (created on first use):
   * every subscription receives every message of the topic; the consumers of
   * one subscription share them. With a handler, messages are handed to it
   * (up to `concurrency` at once): a return acknowledges, a throw nacks with
   * backoff (at-least-once). Without one, iterate: `for await (const m of sub)`.
   * Throws TOPIC_NOT_FOUND, INVALID_ARGUMENT (options; `global` ordering on a
   * multi-partition topic), CONFLICT (other live consumers use another ordering
   * or delivery), UNSUPPORTED (an ordering or delivery the runtime lacks, or
   * exactly-once without transactions; checked before the partitions are).
   */
  async subscribe<T = unknown>(
    topic: string,
    subscription: string,
    handlerOrOptions?: Handler<T> | SubscribeOptions,
    options?: SubscribeOptions,
  ): Promise<Subscription<T>> {
    this.checkOpen()
    checkTopicName(topic)
    checkSubscriptionName(subscription)
    let handler: Handler<T> | null = null
    if (typeof handlerOrOptions === 'function') handler = handlerOrOptions
    else if (handlerOrOptions !== undefined) {
      if (options !== undefined) invalid('subscribe takes (topic, subscription, handler?, options?)')
      options = handlerOrOptions
    }
    const checked = checkSubscribeOptions(topic, options)
    checkCapabilities(this.driver.capabilities, { consumer: checked.config })
    const consumer = await this.driver.openConsumer(topic, subscription, checked.config)
    const sub: Subscription<T> = new Subscription<T>(
      consumer,
      handler,
      {
        topic,
        name: subscription,
        config: checked.config,
        concurrency: checked.concurrency,
        autoscale: checked.autoscale,
        prefetch: checked.prefetch,
        stats: async () => {
          const stats = await this.driver.stats(
            topic,
            checked.autoscale === null ? {} : { targetTimeToEmptyMs: checked.autoscale.targetTimeToEmptyMs },
          )
          const own = stats.subscriptions.find((s) => s.subscription === subscription)
          return own === undefined ? undefined : { subscription: own, published: stats.published }
        },
        codec: this.options.codec,
        clock: this.clock,
        onError: this.options.onError,
        encodeOutputs: (messages) => this.encodeOutputs(messages),
      },
      () => this.subscriptions.delete(sub),
    )
    this.subscriptions.add(sub)
    checked.signal?.addEventListener('abort', () => void sub.close(), { once: true })
    if (checked.signal?.aborted === true) void sub.close()
    return sub
  }

  /** Checks and encodes the messages of `ack({ publish })`, grouped by topic. */
  private encodeOutputs(messages: readonly TransactionMessage[]): TransactionOutput[] {
    checkCapabilities(this.driver.capabilities, { transaction: true })
    const given: unknown = messages
    if (!Array.isArray(given)) invalid('publish must be an array of { topic, data, key?, id?, headers? }')
    const byTopic = new Map<string, AppendRecord[]>()
    given.forEach((message: unknown, i) => {
      if (typeof message !== 'object' || message === null || !('data' in message) || !('topic' in message)) {
        invalid(`publish[${i}] needs a topic and data`)
      }
      const { topic, ...rest } = message as TransactionMessage
      checkTopicName(topic)
      const records = byTopic.get(topic) ?? []
      records.push(this.toRecord(topic, rest.data, rest))
      byTopic.set(topic, records)
    })
    return [...byTopic].map(([topic, records]) => ({ topic, records }))
  }

  /**
   * A record of side effects done outside Sluice, kept in `topic` (created
   * with 1 partition and `retentionMs` retention if absent): `once(key, effect)`
   * runs the effect unless it is recorded as done. See Idempotency for where
   * duplicates remain possible.
   */
  async idempotency(topic: string, options: IdempotencyOptions = {}): Promise<Idempotency> {
    this.checkOpen()
    const retentionMs = options.retentionMs ?? 7 * 86_400_000
    checkTopicName(topic)
    await this.createTopic(topic, {
      partitions: 1,
      retention: { maxAgeMs: retentionMs },
      dedupWindowMs: Math.min(retentionMs, limits.maxDedupWindowMs),
    }).catch((err: unknown) => {
      if (!hasCode(err, ErrorCode.Conflict)) throw err
    })
    return Idempotency.open(this, topic, options, this.clock)
  }

  /**
   * Up to `max` (default 100) messages `subscription` has not acknowledged,
   * oldest first per partition, without leasing them: nothing is acknowledged,
   * no delivery attempt is counted and a subscription that does not exist yet
   * is not created (it sees every stored message). Messages leased to live
   * consumers and delayed ones are included. For tools and inspection.
   * UNSUPPORTED on a runtime without `peek`.
   */
  async peek<T = unknown>(
    topic: string,
    subscription: string,
    options: { max?: number } = {},
  ): Promise<StoredMessage<T>[]> {
    this.checkOpen()
    checkTopicName(topic)
    checkSubscriptionName(subscription)
    const max = options.max === undefined ? 100 : checkInteger('max', options.max, 1, limits.readMax)
    checkCapabilities(this.driver.capabilities, { peek: true })
    const records = await this.driver.peek(topic, subscription, max)
    return records.map((record) => this.toMessage<T>(topic, record))
  }

  /** Deletes a subscription and its state; its consumers are cut off. */
  async deleteSubscription(topic: string, subscription: string): Promise<void> {
    this.checkOpen()
    await this.driver.deleteSubscription(checkTopicName(topic), checkSubscriptionName(subscription))
  }

  /** Figures of a topic and each of its subscriptions (depth, in flight, redeliveries, dead letters, …). */
  async stats(topic: string, options: { targetTimeToEmptyMs?: number } = {}): Promise<TopicStats> {
    this.checkOpen()
    const target =
      options.targetTimeToEmptyMs === undefined
        ? undefined
        : checkInteger('targetTimeToEmptyMs', options.targetTimeToEmptyMs, 1, 86_400_000)
    return this.driver.stats(checkTopicName(topic), target === undefined ? {} : { targetTimeToEmptyMs: target })
  }

  /**
   * Dead letters of `topic` (in `<topic>.dlq`, or `deadLetterTopic`) that
   * have not been redriven, oldest first per partition, with why they died.
   * UNSUPPORTED on a runtime without `peek`.
   */
  async deadLetters<T = unknown>(
    topic: string,
    options: { max?: number; deadLetterTopic?: string } = {},
  ): Promise<DeadLetter<T>[]> {
    this.checkOpen()
    const dlq = checkTopicName(options.deadLetterTopic ?? `${checkTopicName(topic)}.dlq`)
    const max = options.max === undefined ? 100 : checkInteger('max', options.max, 1, limits.readMax)
    checkCapabilities(this.driver.capabilities, { peek: true })
    let records: StoredRecord[]
    try {
      records = await this.driver.peek(dlq, RedriveSubscription, max)
    } catch (err) {
      if (hasCode(err, ErrorCode.TopicNotFound)) return []
      throw err
    }
    return records.map((record) => {
      const h = record.headers
      return {
        ...this.toMessage<T>(dlq, record),
        originalTopic: h[DeadLetterHeaders.OriginalTopic] ?? topic,
        originalPartition: Number(h[DeadLetterHeaders.OriginalPartition] ?? -1),
        originalOffset: Number(h[DeadLetterHeaders.OriginalOffset] ?? -1),
        subscription: h[DeadLetterHeaders.Subscription] ?? '',
        attempts: Number(h[DeadLetterHeaders.Attempts] ?? 0),
        error: h[DeadLetterHeaders.Error] ?? '',
        deadLetteredAt: Number(h[DeadLetterHeaders.DeadLetteredAt] ?? 0),
      }
    })
  }

  /**
   * Moves dead letters back to the topic they came from (or `to`), at most
   * `ratePerSecond`, up to `max`; the copies keep their id, key and headers
   * (without the dead-letter headers). Each move is one transaction (the
   * dead letter acknowledged and its copy published together), so a dead
   * letter moves once: one whose lease was lost is left for a later redrive.
   * The copies are stored like a transaction's outputs, past the target's
   * backlog limits. Resolves with how many moved: at most 10000 per call
   * (dead letters that arrive meanwhile wait for the next). It runs where the
   * data is (over a broker: in the broker), with the reserved `_redrive`
   * subscription no client can open.
   */
  async redrive(topic: string, options: RedriveOptions = {}): Promise<RedriveResult> {
    this.checkOpen()
    // Checked here too, so a bad argument fails the same way before anything is sent.
    checkRedrive(topic, options)
    return this.driver.redrive(topic, options)
  }

  /**
   * Closes every subscription (draining by default: running handlers finish,
   * prefetched messages go back), then the driver. Later calls throw CLOSED.
   */
  async close(options: CloseOptions = {}): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.gather.flushAll()
    // Subscriptions first, so handlers can finish and their acknowledgements land.
    await Promise.all([...this.subscriptions].map((sub) => sub.close(options)))
    await this.driver.close()
  }
}

/** The wait limits of a publish (for `block` overflow and `wait` rate limits), checked. */
function waitOptions(options: { timeoutMs?: number; signal?: AbortSignal } | undefined): AppendOptions {
  if (options === undefined) return {}
  const { timeoutMs, signal } = options
  if (timeoutMs !== undefined) checkInteger('timeoutMs', timeoutMs, 0, 86_400_000)
  if (signal !== undefined && !(signal instanceof AbortSignal)) invalid('signal must be an AbortSignal')
  return { timeoutMs, signal }
}
