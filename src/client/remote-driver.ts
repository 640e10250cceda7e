import type { AppendOptions, Capabilities, Driver, DriverConsumer } from '../core/driver.ts'
import { ErrorCode, sluiceError } from '../core/errors.ts'
import { uuidv7 } from '../core/ids.ts'
import { limits } from '../core/limits.ts'
import type {
  AppendRecord,
  ConsumerConfig,
  Receipt,
  StoredRecord,
  TopicConfig,
  TopicInfo,
  TopicStats,
} from '../core/types.ts'
import { Op } from '../protocol/ops.ts'
import { asArray, decodeStoredRecord, encodeAppendRecord } from '../protocol/wire.ts'
import { ClientConnection, type ConnectionOptions } from './connection.ts'
import { RemoteConsumer } from './remote-consumer.ts'

/**
 * The driver for `sluice://host:port`: the same contract as the embedded
 * engine, carried over the broker protocol. Appends carry this client's
 * producer id and a sequence per record, so a publish whose answer was lost
 * can be sent again without being stored twice.
 */
export class RemoteDriver implements Driver {
  private readonly connection: ClientConnection
  private readonly consumers = new Map<number, RemoteConsumer>()
  private nextConsumerId = 1
  private readonly producerId = uuidv7()
  private sequence = 0
  private closed = false

  private constructor(options: ConnectionOptions) {
    this.connection = new ClientConnection(options, {
      deliver: (id, records) => this.consumers.get(id)?.deliver(records),
      leaseLost: (id, refs) => this.consumers.get(id)?.leaseLost(refs),
      disconnected: () => {
        for (const consumer of this.consumers.values()) consumer.disconnected()
      },
      resumed: async () => {
        for (const consumer of this.consumers.values()) await consumer.open(true).catch(() => undefined)
      },
    })
  }

  /** Connects to a broker; UNAVAILABLE when none answers within connectTimeoutMs. */
  static async connect(options: ConnectionOptions): Promise<RemoteDriver> {
    const driver = new RemoteDriver(options)
    await driver.connection.open()
    return driver
  }

  get capabilities(): Capabilities {
    return this.connection.capabilities as Capabilities
  }

  private checkOpen(): void {
    if (this.closed) throw sluiceError(ErrorCode.Closed, 'the client is closed')
  }

  async createTopic(name: string, config: TopicConfig): Promise<TopicInfo> {
    this.checkOpen()
    return (await this.connection.request(Op.CreateTopic, { name, config }, { retriable: true })) as TopicInfo
  }

  async describeTopic(name: string): Promise<TopicInfo> {
    this.checkOpen()
    return (await this.connection.request(Op.DescribeTopic, { name }, { retriable: true })) as TopicInfo
  }

  async listTopics(): Promise<TopicInfo[]> {
    this.checkOpen()
    return (await this.connection.request(Op.ListTopics, {}, { retriable: true })) as TopicInfo[]
  }

  async deleteTopic(name: string): Promise<void> {
    this.checkOpen()
    await this.connection.request(Op.DeleteTopic, { name })
  }

  async append(topic: string, records: readonly AppendRecord[], options: AppendOptions = {}): Promise<Receipt[]> {
    this.checkOpen()
    // Encode now (the caller may reuse its buffers), stamping each record with this producer's next sequence.
    const limit = Math.floor(this.connection.maxFrameBytes / 2)
    const chunks: unknown[][] = [[]]
    let bytes = 0
    for (const record of records) {
      const size = record.payload.length + 200
      if (size > limit) {
        throw sluiceError(
          ErrorCode.MessageTooLarge,
          `a message of ${record.payload.length} bytes does not fit the broker's frame limit (${this.connection.maxFrameBytes} bytes)`,
        )
      }
      if (bytes + size > limit) {
        chunks.push([])
        bytes = 0
      }
      bytes += size
      chunks[chunks.length - 1]!.push(
        encodeAppendRecord({
          ...record,
          producerId: record.producerId ?? this.producerId,
          sequence: record.sequence ?? this.sequence++,
        }),
      )
    }
    // A publish may wait on the broker for room or a rate slot: its wait is added to the request timeout.
    const args = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }
    const waitMs = options.timeoutMs ?? limits.defaultPublishWaitMs
    const results = await Promise.all(
      chunks.map(
        (wire) =>
          this.connection.request(
            Op.Append,
            { topic, records: wire, ...args },
            { retriable: true, waitMs, ...(options.signal === undefined ? {} : { signal: options.signal }) },
          ) as Promise<Receipt[]>,
      ),
    )
    return results.flat()
  }

  async read(topic: string, partition: number, fromOffset: number, max: number): Promise<StoredRecord[]> {
    this.checkOpen()
    const wire = await this.connection.request(
      Op.Read,
      { topic, partition, from: fromOffset, max },
      { retriable: true },
    )
    return asArray(wire, 'records').map(decodeStoredRecord)
  }

  async openConsumer(topic: string, subscription: string, config: ConsumerConfig): Promise<DriverConsumer> {
    this.checkOpen()
    const id = this.nextConsumerId++
    const consumer = new RemoteConsumer(id, this.connection, topic, subscription, config, (c) =>
      this.consumers.delete(c.id),
    )
    this.consumers.set(id, consumer)
    try {
      await consumer.open()
    } catch (err) {
      this.consumers.delete(id)
      throw err
    }
    return consumer
  }

  async peek(topic: string, subscription: string, max: number): Promise<StoredRecord[]> {
    this.checkOpen()
    const wire = await this.connection.request(Op.Peek, { topic, subscription, max }, { retriable: true })
    return asArray(wire, 'records').map(decodeStoredRecord)
  }

  async deleteSubscription(topic: string, subscription: string): Promise<void> {
    this.checkOpen()
    await this.connection.request(Op.DeleteSubscription, { topic, subscription })
  }

  async stats(topic: string, options: { targetTimeToEmptyMs?: number } = {}): Promise<TopicStats> {
    this.checkOpen()
    return (await this.connection.request(Op.Stats, { topic, ...options }, { retriable: true })) as TopicStats
  }

  /** Resolves when no request is waiting for its answer (tests step fake clocks with it). */
  idle(): Promise<void> {
    return this.connection.idle()
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.all([...this.consumers.values()].map((c) => c.close()))
    this.connection.close()
  }
}
