import { systemClock, type Clock } from './clock.ts'
import { decodePayload, encodePayload, type Codec } from './codec.ts'
import type { Driver } from './driver.ts'
import { ErrorCode, hasCode, sluiceError } from './errors.ts'
import { uuidv7 } from './ids.ts'
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
} from './types.ts'
import { checkInteger, checkPublishOptions, checkTopicConfig, checkTopicName } from './validate.ts'

export interface SluiceOptions {
  /** Encodes every payload (default: bytes as bytes, anything else as JSON). */
  readonly codec?: Codec
  /** Publishing to an unknown topic creates it with default settings instead of failing with TOPIC_NOT_FOUND. */
  readonly autoCreateTopics?: boolean
  readonly clock?: Clock
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

  constructor(
    private readonly driver: Driver,
    private readonly options: SluiceOptions = {},
  ) {
    this.clock = options.clock ?? systemClock
  }

  /** What the underlying driver supports. */
  get capabilities(): Driver['capabilities'] {
    return this.driver.capabilities
  }

  private checkOpen(): void {
    if (this.closed) throw sluiceError(ErrorCode.Closed, 'this Sluice instance is closed; open a new one')
  }

  /**
   * Creates a topic. Idempotent: if it exists and every field given here
   * matches, resolves with the existing topic; a different value for a given
   * field throws CONFLICT. Throws INVALID_ARGUMENT for a bad name or config,
   * UNSUPPORTED for a durability the driver cannot give.
   */
  async createTopic(name: string, config: TopicConfig = {}): Promise<TopicInfo> {
    this.checkOpen()
    return this.driver.createTopic(checkTopicName(name), checkTopicConfig(config))
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

  private toRecord(data: unknown, options: PublishOptions | undefined): AppendRecord {
    const now = this.clock.now()
    const checked = checkPublishOptions(options, now)
    const { payload, format } = encodePayload(data, this.options.codec)
    return {
      id: checked.id ?? uuidv7(now),
      key: checked.key,
      headers: checked.headers,
      payload,
      format,
      deliverAt: checked.deliverAt,
    }
  }

  private async append(topic: string, records: AppendRecord[]): Promise<Receipt[]> {
    try {
      return await this.driver.append(topic, records)
    } catch (err) {
      if (!this.options.autoCreateTopics || !hasCode(err, ErrorCode.TopicNotFound)) throw err
      await this.driver.createTopic(topic, {})
      return this.driver.append(topic, records)
    }
  }

  /**
   * Publishes one message and resolves with its receipt once it is stored as
   * the topic's durability says. The partition comes from the key (Kafka's
   * murmur2), round-robin without one. Throws TOPIC_NOT_FOUND,
   * MESSAGE_TOO_LARGE (nothing stored), INVALID_ARGUMENT, STORAGE_FULL.
   */
  async publish(topic: string, data: unknown, options?: PublishOptions): Promise<Receipt> {
    this.checkOpen()
    checkTopicName(topic)
    const receipts = await this.append(topic, [this.toRecord(data, options)])
    return receipts[0]!
  }

  /**
   * Publishes several messages in one call; all are checked before any is
   * stored. Resolves with their receipts in order.
   */
  async publishBatch(topic: string, messages: readonly OutgoingMessage[]): Promise<Receipt[]> {
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
      return this.toRecord(message.data, message as OutgoingMessage)
    })
    return this.append(topic, records)
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

  /** Closes once in-flight work has settled; later calls throw CLOSED. */
  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await this.driver.close()
  }
}
