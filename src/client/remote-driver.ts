import { capabilitiesFromWire } from '../core/capabilities.ts'
import type { AppendOptions, Capabilities, Driver, DriverConsumer } from '../core/driver.ts'
import { ErrorCode, sluiceError } from '../core/errors.ts'
import type { RedriveOptions, RedriveResult } from '../core/dead-letters.ts'
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
import { asArray, asInt, asObject, decodeReceipts, decodeStoredRecord, encodeAppendRecord } from '../protocol/wire.ts'
import { ClientConnection, type ConnectionOptions } from './connection.ts'
import { RemoteConsumer } from './remote-consumer.ts'

/** Groups records, in order, into runs that fit the frame limit. */
function chunked<T extends { readonly wire: unknown[]; readonly bytes: number }>(
  appends: readonly T[],
  limit: number,
): T[][] {
  const chunks: T[][] = []
  let current: T[] = []
  let bytes = 0
  for (const a of appends) {
    if (current.length > 0 && bytes + a.bytes > limit) {
      chunks.push(current)
      current = []
      bytes = 0
    }
    current.push(a)
    bytes += a.bytes
  }
  if (current.length > 0) chunks.push(current)
  return chunks
}

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
  /** The producer id an APPEND names once, for its records of that producer (set by the first record sent). */
  private requestProducer: string | undefined
  private sequence = 0
  private closed = false
  /** Appends sent and not yet answered: close() waits for them, so that what was stored is reported stored. */
  private readonly appending = new Set<Promise<Receipt[]>>()
  /** The broker's, from its last WELCOME (a reconnect may reach a broker that has others), read once per WELCOME. */
  private welcomed: { readonly wire: unknown; readonly capabilities: Capabilities } | null = null

  private constructor(options: ConnectionOptions) {
    this.connection = new ClientConnection(options, {
      deliver: (id, records) => this.consumers.get(id)?.deliver(records),
      leaseLost: (id, refs) => this.consumers.get(id)?.leaseLost(refs),
      consumerClosed: (id, reason) => this.consumers.get(id)?.ended(reason),
      disconnected: () => {
        for (const consumer of this.consumers.values()) consumer.disconnected()
      },
      resumed: async () => {
        // A refused reopen is the consumer's to report and retry (see RemoteConsumer.reopen); the others go on.
        for (const consumer of this.consumers.values()) await consumer.reopen()
      },
    })
  }

  /** Connects to a broker; UNAVAILABLE when none answers within connectTimeoutMs. */
  static async connect(options: ConnectionOptions): Promise<RemoteDriver> {
    const driver = new RemoteDriver(options)
    await driver.connection.open()
    return driver
  }

  /** What the broker's runtime can do; what an older broker does not declare counts as absent. */
  get capabilities(): Capabilities {
    const wire = this.connection.capabilities
    if (this.welcomed === null || this.welcomed.wire !== wire)
      this.welcomed = { wire, capabilities: capabilitiesFromWire(wire) }
    return this.welcomed.capabilities
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
    const wire: unknown[] = []
    const sizes: number[] = []
    for (const record of records) {
      const size = record.payload.length + 200
      if (size > limit) {
        const frameBytes = this.connection.maxFrameBytes
        throw sluiceError(
          ErrorCode.MessageTooLarge,
          `a message of ${record.payload.length} bytes does not fit the broker's frame limit of ${frameBytes} bytes (a message may take up to half a frame); raise the limit on the broker with 'sluice serve --max-frame-bytes <n>' (env SLUICE_MAX_FRAME_BYTES), or send smaller messages`,
          { details: { size: record.payload.length, maxFrameBytes: frameBytes } },
        )
      }
      // The usual caller (Sluice) stamps its own producer id on every record: that one travels once per request.
      this.requestProducer ??= record.producerId ?? this.producerId
      const producerId = record.producerId ?? this.producerId
      const encoded = encodeAppendRecord(record, this.requestProducer, producerId, record.sequence ?? this.sequence++)
      wire.push(encoded)
      sizes.push(size)
    }
    // One request, or several when the records do not fit one frame. Publishes of one turn come here already
    // gathered into one append (core/publish-gather.ts).
    const items = wire.map((encoded, i) => ({ wire: [encoded], bytes: sizes[i]! }))
    const results = await Promise.all(
      chunked(items, limit).map((chunk) =>
        this.sendAppend(
          topic,
          chunk.flatMap((a) => a.wire),
          options,
        ),
      ),
    )
    return results.flat()
  }

  private sendAppend(topic: string, wire: unknown[], options: AppendOptions): Promise<Receipt[]> {
    const args = options.timeoutMs === undefined ? {} : { timeoutMs: options.timeoutMs }
    const sent = this.connection
      .request(
        Op.Append,
        { topic, producer: this.requestProducer ?? this.producerId, records: wire, ...args },
        {
          retriable: true,
          // Its wait for room or a rate slot is added to the request timeout.
          waitMs: options.timeoutMs ?? limits.defaultPublishWaitMs,
          ...(options.signal === undefined ? {} : { signal: options.signal }),
        },
      )
      .then((receipts) =>
        decodeReceipts(
          receipts,
          wire.map((record) => (record as unknown[])[0] as string),
        ),
      )
    this.appending.add(sent)
    const settled = (): void => void this.appending.delete(sent)
    sent.then(settled, settled)
    return sent
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

  /**
   * The broker runs the redrive (it alone may use the reserved `_redrive` subscription). The request may take
   * as long as its pacing says (up to 10000 moves at `ratePerSecond`): that long is added to its timeout.
   */
  async redrive(topic: string, options: RedriveOptions, signal?: AbortSignal): Promise<RedriveResult> {
    this.checkOpen()
    const { to, ratePerSecond, max, deadLetterTopic } = options
    // Only the options given travel (MessagePack would carry an undefined as nil).
    const wire = Object.fromEntries(
      Object.entries({ to, ratePerSecond, max, deadLetterTopic }).filter(([, value]) => value !== undefined),
    )
    const moves = Math.min(max ?? limits.readMax, limits.readMax)
    // Paced moves take moves / rate seconds; each move is also a transaction (a few ms when durable).
    const waitMs = Math.ceil((ratePerSecond === undefined ? 0 : (moves * 1000) / ratePerSecond) + moves * 10)
    const result = asObject(
      await this.connection.request(
        Op.Redrive,
        { topic, options: wire },
        { waitMs, ...(signal === undefined ? {} : { signal }) },
      ),
      'redrive result',
    )
    return { moved: asInt(result['moved'], 'moved') }
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
    // Appends sent get up to 5 s for their answers before the connection ends, so that a stored message is not
    // reported CLOSED (one blocked on a full topic may wait longer: it is cut off, and may or may not be stored).
    const answered = Promise.allSettled([...this.appending])
    let timer: NodeJS.Timeout | undefined
    await Promise.race([answered, new Promise((resolve) => (timer = setTimeout(resolve, 5000)))])
    clearTimeout(timer)
    await Promise.all([...this.consumers.values()].map((c) => c.close()))
    this.connection.close()
  }
}
