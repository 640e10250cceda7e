// Over 500 lines, for now: the engine's Driver implementation, one method per contract call, each serialised
// per topic. Topic lifecycle (create, load, delete) is the seam to move out next.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { systemClock, type Clock } from '../core/clock.ts'
import type { AppendOptions, Capabilities, Driver } from '../core/driver.ts'
import { deadLetterHeaders, type RedriveOptions, type RedriveResult } from '../core/dead-letters.ts'
import { checkRedrive, redriveDeadLetters } from '../core/redrive.ts'
import { asSluiceError, ErrorCode, sluiceError } from '../core/errors.ts'
import { limits } from '../core/limits.ts'
import { checkConsumerConfig } from '../core/subscribe-options.ts'
import {
  DeliveryGuarantee,
  Durability,
  Ordering,
  Overflow,
  type AppendRecord,
  type ConsumerConfig,
  type Receipt,
  type StoredRecord,
  type TopicConfig,
  type TopicInfo,
  type TopicStats,
} from '../core/types.ts'
import {
  checkInteger,
  checkInternalName,
  checkTopicConfig,
  checkTopicName,
  topicConfigConflicts,
  topicInfoFrom,
} from '../core/validate.ts'
import { CacheBudget } from './log/cache-budget.ts'
import { FileLog, type RecentRecord } from './log/file-log.ts'
import { nodeFileSystem, type FileSystem } from './log/files.ts'
import { MemoryLog } from './log/memory-log.ts'
import type { PartitionLog, RecoveryReport } from './log/partition-log.ts'
import { checkMessageSizes } from '../core/message-size.ts'
import { encodedSize, toStoredRecord, type LogRecord, type RecordDraft } from './log/record.ts'
import type { EngineConsumer } from './subscriptions/consumer.ts'
import { SubscriptionRegistry } from './subscriptions/registry.ts'
import { Dedup, receiptOf, type Known } from './dedup.ts'
import { TopicFlow, type Backlog } from './flow.ts'
import { defaultDiskReserveBytes, DiskSpace } from './disk-space.ts'
import { DirLock } from './lock.ts'
import { Topic } from './topic.ts'

/**
 * The embedded engine: topics as partitioned logs in a data directory
 * (`file:`) or in memory (`memory:`). Implements the driver contract.
 *
 * Data directory layout:
 *   LOCK                                 the owning process
 *   topics/<topic>/topic.json            configuration, written last: a topic without it was never created
 *   topics/<topic>/<partition>/*.log     segments, *.idx their sparse indexes
 *   state/                               subscription state: journal and snapshots
 *   trash/                               topics being deleted
 */

export interface EngineOptions {
  /** The data directory; absent for a memory-only engine. */
  readonly dir?: string
  readonly clock?: Clock
  /** The file layer (fault tests put one below the engine). */
  readonly fs?: FileSystem
  /** Bytes of recent records each partition keeps in memory for reads. Default 4 MiB. */
  readonly cacheBytesPerPartition?: number
  /**
   * Bytes of recent records all partitions keep in memory together, whatever
   * the number of topics and partitions: beyond it the batches cached longest
   * ago are dropped, and read from disk when asked for. Default 256 MiB.
   */
  readonly cacheBytes?: number
  /** How often retention runs. Default 5000. */
  readonly retentionIntervalMs?: number
  /**
   * Free space on the data directory's disk kept back from publishes, so that
   * acknowledgements and recovery have room when the disk fills (publishes
   * get STORAGE_FULL meanwhile). Default 64 MiB; 0 turns it off.
   */
  readonly diskReserveBytes?: number
  /** Told about torn tails that recovery cut off. Default: a process warning. */
  readonly onRecovery?: (report: RecoveryReport) => void
}

const defaultCacheBytes = 256 * 1024 * 1024

interface TopicFile {
  readonly version: 1
  readonly info: TopicInfo
}

export class Engine implements Driver {
  readonly capabilities: Capabilities
  private readonly topics = new Map<string, Topic>()
  /** Serialises create and delete per topic name. */
  private readonly topicLocks = new Map<string, Promise<unknown>>()
  private readonly clock: Clock
  private readonly fs: FileSystem
  private closed = false
  private readonly disk: DiskSpace | null
  private stopRetention: (() => void) | null = null
  private subscriptions: SubscriptionRegistry | null = null
  private readonly dedup = new Dedup()
  private readonly cacheBudget: CacheBudget

  private get registry(): SubscriptionRegistry {
    if (this.subscriptions === null) throw sluiceError(ErrorCode.Internal, 'the engine is not open')
    return this.subscriptions
  }
  /** Torn tails recovery cut off at open, one per partition that had one. */
  readonly recoveries: RecoveryReport[] = []

  private constructor(
    private readonly options: EngineOptions,
    private readonly lock: DirLock | null,
  ) {
    this.clock = options.clock ?? systemClock
    this.fs = options.fs ?? nodeFileSystem
    this.cacheBudget = new CacheBudget(options.cacheBytes ?? defaultCacheBytes)
    this.disk =
      options.dir === undefined
        ? null
        : new DiskSpace(options.dir, this.fs, this.clock, options.diskReserveBytes ?? defaultDiskReserveBytes)
    this.capabilities = {
      durability:
        options.dir === undefined ? [Durability.Memory] : [Durability.Fsync, Durability.Interval, Durability.Memory],
      orderings: Object.values(Ordering),
      deliveries: Object.values(DeliveryGuarantee),
      delayedDelivery: true,
      overflow: Object.values(Overflow),
      limitBy: ['maxMessages', 'maxBytes'],
      rateLimitScopes: ['topic', 'producer'],
      dedupById: true,
      idempotentProducers: true,
      transactions: true,
      peek: true,
      consumptionRetention: true,
      retention: ['maxAgeMs', 'maxBytes'],
    }
  }

  /** Opens the engine, taking the data directory's lock and recovering every topic. */
  static async open(options: EngineOptions = {}): Promise<Engine> {
    let lock: DirLock | null = null
    if (options.dir !== undefined) {
      await (options.fs ?? nodeFileSystem).mkdir(options.dir)
      lock = await DirLock.acquire(options.dir)
    }
    const engine = new Engine(options, lock)
    try {
      await engine.load()
    } catch (err) {
      await engine.close().catch(() => undefined)
      throw asSluiceError(err)
    }
    engine.scheduleRetention()
    return engine
  }

  private get dir(): string | undefined {
    return this.options.dir
  }

  private spillDirectory: string | null = null

  /** Where memory topics spill: in the data directory, or a temp directory of this process for `memory:`. */
  private spillRoot(): string {
    this.spillDirectory ??=
      this.dir !== undefined ? join(this.dir, 'spill') : mkdtempSync(join(tmpdir(), 'sluice-spill-'))
    return this.spillDirectory
  }

  private async load(): Promise<void> {
    // Spilled messages of memory topics are gone on restart.
    if (this.dir !== undefined) await this.fs.removeTree(join(this.dir, 'spill'))
    await this.disk?.check()
    await this.loadTopics()
    this.subscriptions = await SubscriptionRegistry.open(this.dir, this.fs, {
      clock: this.clock,
      topic: (name) => this.topic(name),
      ensureTopic: (name, like) => this.ensureTopic(name, like),
      // A committed transaction's outputs are stored past the output topics' limits: the transaction was decided
      // when it committed (its ack is recorded), so a refusal now could only lose them.
      append: (topic, records) => this.append(topic, records, { committed: true }),
      checkAppend: (topic, records) => this.checkAppend(topic, records),
      recallProducers: (topic, producerIds, sinceMs) => this.recallProducers(topic, producerIds, sinceMs),
      progressed: (topic, count) => topic.flow.drained(count / Math.max(1, this.registry.subscriptionCount(topic))),
    })
    for (const topic of this.topics.values()) this.registry.attach(topic)
    await this.registry.resumeTransactions()
  }

  private async loadTopics(): Promise<void> {
    const dir = this.dir
    if (dir === undefined) return
    const topicsDir = join(dir, 'topics')
    await this.fs.mkdir(topicsDir)
    await this.fs.removeTree(join(dir, 'trash'))
    for (const name of await this.fs.readdir(topicsDir)) {
      const topicDir = join(topicsDir, name)
      let file: TopicFile
      try {
        file = JSON.parse((await this.fs.readFile(join(topicDir, 'topic.json'))).toString('utf8')) as TopicFile
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
          // Creation never finished (topic.json is written last): nothing was ever stored here.
          await this.fs.removeTree(topicDir)
          continue
        }
        throw sluiceError(
          ErrorCode.Corrupt,
          `topic file ${join(topicDir, 'topic.json')} is unreadable: ${String(err)}`,
          { cause: err },
        )
      }
      this.topics.set(name, await this.openTopic(file.info, topicDir))
    }
  }

  private async openTopic(info: TopicInfo, topicDir: string | null): Promise<Topic> {
    const logs: PartitionLog[] = []
    try {
      for (let p = 0; p < info.partitions; p++) logs.push(await this.openLog(info, topicDir, p))
    } catch (err) {
      for (const log of logs) await log.close().catch(() => undefined)
      throw err
    }
    const topic = new Topic(info, logs, topicDir)
    topic.flow = new TopicFlow(info, this.clock, {
      backlog: (exact: boolean, withBytes: boolean) => this.backlog(topic, exact, withBytes),
      evictOldest: (count) => this.evictOldest(topic, count),
    })
    return topic
  }

  private async openLog(info: TopicInfo, topicDir: string | null, partition: number): Promise<PartitionLog> {
    if (info.durability === Durability.Memory || topicDir === null) {
      return new MemoryLog({
        clock: this.clock,
        budgetBytes: info.memoryBytes / info.partitions,
        fs: this.fs,
        // Unique per log: a topic deleted and created again must not share files with the old one.
        spillDir: () => join(this.spillRoot(), `${info.name}.${info.createdAt}`, String(partition)),
      })
    }
    const now = this.clock.now()
    const log = await FileLog.open({
      dir: join(topicDir, String(partition)),
      fs: this.fs,
      clock: this.clock,
      durability: info.durability,
      fsyncIntervalMs: info.fsyncIntervalMs,
      segmentBytes: info.segmentBytes,
      cacheBytes: this.options.cacheBytesPerPartition ?? 4 * 1024 * 1024,
      cacheBudget: this.cacheBudget,
      recentSinceMs: info.dedupWindowMs > 0 ? now - info.dedupWindowMs : undefined,
      // A producer silent for longer is forgotten anyway, restart or not.
      producersSinceMs: now - this.dedup.idleMs,
    })
    for (const r of log.recentRecords) this.rememberStored(info.name, partition, r)
    log.recentRecords = []
    if (log.recovery !== null) {
      this.recoveries.push(log.recovery)
      const report =
        this.options.onRecovery ??
        ((r: RecoveryReport) => {
          process.emitWarning(
            `sluice recovery cut ${r.cutBytes} bytes from ${r.path}: ${r.reason}; the log continues at offset ${r.nextOffset}`,
            'SluiceRecoveryWarning',
          )
        })
      report(log.recovery)
    }
    return log
  }

  /** Tells deduplication of a record stored before this open (oldest first). */
  private rememberStored(topic: string, partition: number, r: RecentRecord): void {
    const receipt: Receipt = { id: r.id, partition, offset: r.offset, duplicate: false }
    if (r.producerId !== '' && this.dedup.findSequence(topic, r.producerId, r.sequence) === undefined) {
      const range = this.dedup.rememberRange(
        topic,
        r.producerId,
        r.sequence,
        1,
        Promise.resolve([receipt]),
        0,
        r.timestamp,
      )
      this.dedup.settleRange(range, [receipt])
    }
    if (r.idFromProducer) this.dedup.rememberId(topic, r.id, receipt, r.timestamp)
  }

  /**
   * Finds the records of `producerIds` stored in `topicName` at or after
   * `sinceMs`, however long ago, and remembers their sequences, so that
   * appending them again is recognised (a transaction's outputs, published
   * again after a crash). Throws TOPIC_NOT_FOUND.
   */
  private async recallProducers(topicName: string, producerIds: ReadonlySet<string>, sinceMs: number): Promise<void> {
    const topic = this.topic(topicName)
    for (const [partition, log] of topic.logs.entries()) {
      // A memory log starts empty at open: nothing stored before it to find.
      if (!(log instanceof FileLog)) continue
      await log.scanSince(sinceMs, (record) => {
        if (producerIds.has(record.producerId))
          this.rememberStored(topicName, partition, { ...record, idFromProducer: false })
      })
    }
  }

  private checkOpen(): void {
    if (this.closed) throw sluiceError(ErrorCode.Closed, 'the engine is closed; open a new one')
  }

  private topic(name: string): Topic {
    const topic = this.topics.get(name)
    if (topic === undefined) {
      throw sluiceError(
        ErrorCode.TopicNotFound,
        `topic ${JSON.stringify(name)} not found (create it first, or open with autoCreateTopics: true)`,
        {
          details: { topic: name },
        },
      )
    }
    return topic
  }

  /** Runs `fn` after any create or delete of the same topic name has finished. */
  private async serialised<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.topicLocks.get(name) ?? Promise.resolve()
    const run = previous.then(fn, fn)
    const settled = run.then(
      () => undefined,
      () => undefined,
    )
    this.topicLocks.set(name, settled)
    try {
      return await run
    } finally {
      if (this.topicLocks.get(name) === settled) this.topicLocks.delete(name)
    }
  }

  async createTopic(name: string, config: TopicConfig): Promise<TopicInfo> {
    this.checkOpen()
    checkTopicName(name)
    checkTopicConfig(config)
    if (config.durability !== undefined && !this.capabilities.durability.includes(config.durability)) {
      throw sluiceError(
        ErrorCode.Unsupported,
        `durability ${JSON.stringify(config.durability)} needs a data directory; this engine is memory-only (open with url 'file:<dir>')`,
        { details: { durability: config.durability } },
      )
    }
    return this.serialised(name, async () => {
      this.checkOpen()
      const existing = this.topics.get(name)
      if (existing !== undefined) {
        const conflicts = topicConfigConflicts(existing.info, config)
        if (conflicts.length > 0) {
          throw sluiceError(
            ErrorCode.Conflict,
            `topic ${JSON.stringify(name)} already exists with another configuration: ${conflicts.join('; ')}`,
            {
              details: { topic: name, conflicts },
            },
          )
        }
        return existing.info
      }
      const defaultDurability = this.dir === undefined ? Durability.Memory : Durability.Fsync
      const info = topicInfoFrom(name, config, defaultDurability, this.clock.now())
      const dir = this.dir
      if (dir === undefined) {
        this.topics.set(name, await this.openTopic(info, null))
        return info
      }
      const topicDir = join(dir, 'topics', name)
      await this.fs.removeTree(topicDir)
      await this.fs.mkdir(topicDir)
      const topic = await this.openTopic(info, topicDir)
      try {
        const file: TopicFile = { version: 1, info }
        await this.fs.writeFileAtomic(join(topicDir, 'topic.json'), Buffer.from(JSON.stringify(file, null, 2)))
        await this.fs.syncDir(join(dir, 'topics'))
      } catch (err) {
        for (const log of topic.logs) await log.close().catch(() => undefined)
        await this.fs.removeTree(topicDir).catch(() => undefined)
        throw asSluiceError(err, ErrorCode.StorageFailed)
      }
      this.topics.set(name, topic)
      return info
    })
  }

  describeTopic(name: string): Promise<TopicInfo> {
    this.checkOpen()
    return Promise.resolve(this.topic(name).info)
  }

  listTopics(): Promise<TopicInfo[]> {
    this.checkOpen()
    return Promise.resolve([...this.topics.values()].map((t) => t.info).sort((a, b) => a.name.localeCompare(b.name)))
  }

  async deleteTopic(name: string): Promise<void> {
    this.checkOpen()
    await this.serialised(name, async () => {
      const topic = this.topic(name)
      await this.registry.dropTopic(topic)
      this.dedup.dropTopic(name)
      this.topics.delete(name)
      topic.flow.close(
        sluiceError(ErrorCode.TopicNotFound, `topic ${JSON.stringify(name)} was deleted while this publish waited`),
      )
      for (const log of topic.logs) await log.close().catch(() => undefined)
      const dir = this.dir
      if (dir === undefined || topic.dir === null) return
      // Rename first, so a crash mid-delete never leaves a half-deleted topic that looks alive.
      const trash = join(dir, 'trash')
      await this.fs.mkdir(trash)
      const target = join(trash, `${name}.${this.clock.now()}`)
      await this.fs.rename(topic.dir, target)
      await this.fs.syncDir(join(dir, 'topics'))
      await this.fs.removeTree(target)
    })
  }

  /** Throws what `append` would refuse (TOPIC_NOT_FOUND, MESSAGE_TOO_LARGE) without storing anything. */
  checkAppend(topicName: string, records: readonly AppendRecord[]): Topic {
    this.checkOpen()
    const topic = this.topic(topicName)
    checkMessageSizes(topicName, records, topic.info.maxMessageBytes)
    return topic
  }

  async append(
    topicName: string,
    records: readonly AppendRecord[],
    options: AppendOptions & { readonly committed?: boolean } = {},
  ): Promise<Receipt[]> {
    const topic = this.checkAppend(topicName, records)
    if (this.disk !== null && topic.info.durability !== Durability.Memory) {
      // A committed transaction's outputs may use the reserve: the transaction was decided when it committed.
      const refusal = this.disk.roomy || options.committed === true ? null : await this.disk.refusal()
      if (refusal !== null) {
        topic.flow.rejected += records.length
        throw refusal
      }
      let bytes = 0
      for (const record of records) bytes += record.payload.length
      this.disk.wrote(bytes)
    }
    const windowMs = topic.info.dedupWindowMs
    const checkIds = windowMs > 0 && records.some((r) => r.idFromProducer === true)
    const now = this.clock.now()
    if (!checkIds) {
      // The common case: one producer's consecutive sequences, none seen before: one range, no per-record work.
      const run = producerRun(records)
      if (run === 'none') return this.store(topic, records, options)
      if (run !== null && !this.dedup.overlaps(topicName, run.producerId, run.first, records.length)) {
        const pending = this.store(topic, records, options)
        const range = this.dedup.rememberRange(topicName, run.producerId, run.first, records.length, pending, 0, now)
        pending.then(
          (receipts) => this.dedup.settleRange(range, receipts),
          () => this.dedup.forgetRange(topicName, run.producerId, range),
        )
        return pending
      }
    }
    // Retries of sequences and repeats of producer-chosen ids get the first receipt instead of a second copy.
    const known = new Map<number, Known>()
    const sameAs = new Map<number, number>()
    const firstWithId = new Map<string, number>()
    const fresh: number[] = []
    records.forEach((record, i) => {
      let prior: Known | undefined
      if (record.producerId !== undefined)
        prior = this.dedup.findSequence(topicName, record.producerId, record.sequence ?? 0)
      if (prior === undefined && checkIds && record.idFromProducer === true) {
        prior = this.dedup.findId(topicName, record.id, now, windowMs)
        const earlier = firstWithId.get(record.id)
        if (prior === undefined && earlier !== undefined) {
          sameAs.set(i, earlier)
          return
        }
        firstWithId.set(record.id, i)
      }
      if (prior === undefined) fresh.push(i)
      else known.set(i, prior)
    })
    const pending =
      fresh.length === 0
        ? Promise.resolve([])
        : this.store(
            topic,
            fresh.map((i) => records[i]!),
            options,
          )
    const freshAt = new Map<number, number>()
    const ranges = fresh.map((i, j) => {
      freshAt.set(i, j)
      const record = records[i]!
      if (checkIds && record.idFromProducer === true)
        this.dedup.rememberId(topicName, record.id, { pending, index: j }, now)
      if (record.producerId === undefined) return null
      return this.dedup.rememberRange(topicName, record.producerId, record.sequence ?? 0, 1, pending, j, now)
    })
    pending.then(
      (receipts) =>
        fresh.forEach((i, j) => {
          const range = ranges[j]
          if (range !== null && range !== undefined) this.dedup.settleRange(range, receipts)
          if (records[i]!.idFromProducer === true) this.dedup.settleId(topicName, records[i]!.id, receipts[j]!)
        }),
      () =>
        fresh.forEach((i, j) => {
          const r = records[i]!
          const range = ranges[j]
          if (r.producerId !== undefined && range !== null && range !== undefined)
            this.dedup.forgetRange(topicName, r.producerId, range)
          if (r.idFromProducer === true) this.dedup.forgetId(topicName, r.id)
        }),
    )
    const stored = await pending
    const receiptAt = async (i: number): Promise<Receipt> => {
      const j = freshAt.get(i)
      if (j !== undefined) return stored[j]!
      const earlier = sameAs.get(i)
      const first = earlier === undefined ? await receiptOf(known.get(i)!) : await receiptAt(earlier)
      return { ...first, duplicate: true }
    }
    return Promise.all(records.map((_, i) => receiptAt(i)))
  }

  /**
   * Stores records: admitted by the topic's flow control (rate limit,
   * backlog bound) first, then partitioned by key (round-robin without), one
   * append per partition.
   */
  private async store(
    topic: Topic,
    drafts: readonly RecordDraft[],
    options: AppendOptions & { readonly committed?: boolean },
  ): Promise<Receipt[]> {
    const flow = topic.flow
    if (!flow.active || options.committed === true) {
      const receipts = await this.storeNow(topic, drafts)
      flow.stored(receipts.length)
      return receipts
    }
    let bytes = 0
    if (flow.countsBytes) for (const draft of drafts) bytes += encodedSize(draft)
    const producerId = drafts[0]?.producerId
    const now = this.clock.now()
    if (!flow.tryAdmit(drafts.length, bytes, producerId, now)) {
      await flow.admit(drafts.length, bytes, { ...options, producerId })
    }
    // Settled either way, the reservation ends (promise callbacks rather than try/finally: this is the hot path).
    return this.storeNow(topic, drafts).then(
      (receipts) => {
        flow.release(drafts.length, bytes)
        flow.stored(receipts.length, now)
        return receipts
      },
      (err: unknown) => {
        flow.release(drafts.length, bytes)
        throw err
      },
    )
  }

  private async storeNow(topic: Topic, drafts: readonly RecordDraft[]): Promise<Receipt[]> {
    if (topic.info.partitions === 1) {
      const stored = await topic.logs[0]!.append(drafts)
      return stored.map((record) => ({ id: record.id, partition: 0, offset: record.offset, duplicate: false }))
    }
    const byPartition = new Map<number, { drafts: RecordDraft[]; at: number[] }>()
    for (let i = 0; i < drafts.length; i++) {
      const partition = topic.partitioner.choose(drafts[i]!.key)
      let group = byPartition.get(partition)
      if (group === undefined) {
        group = { drafts: [], at: [] }
        byPartition.set(partition, group)
      }
      group.drafts.push(drafts[i]!)
      group.at.push(i)
    }
    const receipts = new Array<Receipt>(drafts.length)
    await Promise.all(
      [...byPartition].map(async ([partition, group]) => {
        const stored = await topic.logs[partition]!.append(group.drafts)
        stored.forEach((record, j) => {
          receipts[group.at[j]!] = { id: record.id, partition, offset: record.offset, duplicate: false }
        })
      }),
    )
    return receipts
  }

  async read(topicName: string, partition: number, fromOffset: number, max: number): Promise<StoredRecord[]> {
    this.checkOpen()
    const topic = this.topic(topicName)
    checkInteger('partition', partition, 0, topic.info.partitions - 1)
    checkInteger('fromOffset', fromOffset, 0, Number.MAX_SAFE_INTEGER)
    checkInteger('max', max, 1, limits.readMax)
    const records = await topic.logs[partition]!.read(
      Math.max(fromOffset, this.registry.dropFloor(topic, partition)),
      max,
    )
    return records.map((record) => toStoredRecord(record, partition))
  }

  /** Runs retention on every partition now (it also runs every `retentionIntervalMs`). */
  async runRetention(): Promise<number> {
    this.dedup.expire(this.clock.now(), (topic) => this.topics.get(topic)?.info.dedupWindowMs ?? 0)
    let deleted = 0
    for (const topic of this.topics.values()) {
      for (const [partition, log] of topic.logs.entries()) {
        const result = await log.applyRetention({
          now: this.clock.now(),
          maxAgeMs: topic.info.retention.maxAgeMs,
          maxBytes: topic.info.retention.maxBytes,
          consumedBefore: this.registry.consumedBefore(topic, partition),
        })
        deleted += result.deletedMessages
        if (result.deletedMessages > 0) this.registry.retentionDeleted(topic, partition, result.startOffset)
      }
      topic.flow.roomMayHaveAppeared()
    }
    return deleted
  }

  private scheduleRetention(): void {
    const every = this.options.retentionIntervalMs ?? 5000
    const tick = (): void => {
      this.stopRetention = null
      if (this.closed) return
      this.runRetention()
        .catch(() => undefined)
        .finally(() => {
          if (!this.closed) this.stopRetention = this.clock.setTimer(tick, every)
        })
    }
    this.stopRetention = this.clock.setTimer(tick, every)
  }

  /** Creates `name` like `like` (partitions, durability) unless it exists, whatever its shape then. */
  private async ensureTopic(name: string, like: Topic): Promise<void> {
    if (this.topics.has(name)) return
    try {
      await this.createTopic(name, { partitions: like.info.partitions, durability: like.info.durability })
    } catch (err) {
      if (!this.topics.has(name)) throw err
    }
  }

  async openConsumer(topicName: string, subscription: string, config: ConsumerConfig): Promise<EngineConsumer> {
    this.checkOpen()
    checkInternalName('subscription', subscription)
    const checked = checkConsumerConfig(config)
    return this.serialised(topicName, async () => {
      this.checkOpen()
      const topic = this.topic(topicName)
      const consumer = await this.registry.openConsumer(topic, subscription, checked)
      // A new subscription may start behind the others: the backlog can grow.
      topic.flow.forgetBound()
      return consumer
    })
  }

  async peek(topicName: string, subscription: string, max: number): Promise<StoredRecord[]> {
    this.checkOpen()
    checkInternalName('subscription', subscription)
    checkInteger('max', max, 1, limits.readMax)
    return this.registry.peek(this.topic(topicName), subscription, max)
  }

  async deleteSubscription(topicName: string, subscription: string): Promise<void> {
    this.checkOpen()
    checkInternalName('subscription', subscription)
    const topic = this.topic(topicName)
    await this.serialised(topicName, () => this.registry.deleteSubscription(topic, subscription))
    topic.flow.roomMayHaveAppeared()
  }

  /** Runs the redrive here, on this engine's own handles (the reserved `_redrive` subscription). */
  async redrive(topic: string, options: RedriveOptions, signal?: AbortSignal): Promise<RedriveResult> {
    this.checkOpen()
    return redriveDeadLetters(this, this.clock, checkRedrive(topic, options), signal)
  }

  async stats(topicName: string, options: { targetTimeToEmptyMs?: number } = {}): Promise<TopicStats> {
    this.checkOpen()
    const topic = this.topic(topicName)
    const now = this.clock.now()
    const target = options.targetTimeToEmptyMs ?? 60_000
    const partitions = topic.logs.map((log, partition) => ({
      partition,
      startOffset: log.startOffset,
      endOffset: log.endOffset,
      bytes: log.bytes,
    }))
    const publishRate = topic.flow.publishRate.perSecond(now)
    return {
      topic: topic.name,
      messages: partitions.reduce((n, p) => n + p.endOffset - p.startOffset, 0),
      bytes: partitions.reduce((n, p) => n + p.bytes, 0),
      backlog: this.backlog(topic, true, false).messages,
      publishRate,
      published: topic.flow.published,
      rejected: topic.flow.rejected,
      dropped: topic.flow.dropped,
      partitions,
      subscriptions: await this.registry.stats(topic, publishRate, target),
    }
  }

  /**
   * The backlog a topic's limits bound, from each partition's backlog head
   * (its oldest message some subscription has not acknowledged). Messages:
   * everything from the head (cheap, an upper bound), or counted exactly with
   * acknowledgements out of order. Bytes: stored bytes from the head, at most
   * an index interval over per partition, never under.
   */
  private backlog(topic: Topic, exact: boolean, withBytes: boolean): Backlog {
    let messages = 0
    let bytes = 0
    for (let p = 0; p < topic.logs.length; p++) {
      const log = topic.logs[p]!
      const head = this.registry.backlogHead(topic, p)
      messages += exact ? this.registry.unackedCount(topic, p) : Math.max(0, log.endOffset - head)
      if (withBytes) bytes += log.bytesFrom(head)
    }
    return { messages, bytes }
  }

  /**
   * drop-oldest: evicts the `count` oldest backlog messages across the
   * topic's partitions (oldest by store time), sending them to the limits'
   * dead-letter topic first when there is one. Messages a subscription holds
   * (in flight to a handler, being dead-lettered) are passed over: they still
   * count in the bound, and their handlers' outcomes stand. The victims are
   * chosen and reserved in one turn, so that nothing that lands while the
   * dead letters are written (acknowledgements, leases) changes them.
   */
  private async evictOldest(topic: Topic, count: number): Promise<number> {
    // Held messages and those acknowledged out of order are passed over: read on past them as needed.
    const page = Math.min(limits.readMax, count + this.registry.heldCount(topic))
    const heads = topic.logs.map((log, p) => ({
      p,
      log,
      next: this.registry.backlogHead(topic, p),
      records: [] as LogRecord[],
      taken: 0,
      victims: [] as LogRecord[],
    }))
    const refill = async (): Promise<void> => {
      await Promise.all(
        heads.map(async (h) => {
          if (h.taken < h.records.length || h.next >= h.log.endOffset) return
          h.records = await h.log.read(h.next, page)
          h.taken = 0
          const last = h.records[h.records.length - 1]
          h.next = last === undefined ? h.log.endOffset : last.offset + 1
        }),
      )
    }
    await refill()
    let evicted = 0
    while (evicted < count) {
      let oldest: (typeof heads)[number] | undefined
      for (const h of heads) {
        const next = h.records[h.taken]
        if (next !== undefined && (oldest === undefined || next.timestamp < oldest.records[oldest.taken]!.timestamp))
          oldest = h
      }
      if (oldest === undefined) break
      const record = oldest.records[oldest.taken++]!
      // Acknowledged by every subscription already (acks out of order), or held by one: passed over, not evicted.
      if (this.registry.evictable(topic, oldest.p, record.offset)) {
        oldest.victims.push(record)
        evicted++
      }
      // The choice must not span a wait (what it saw would change meanwhile): read on only while nothing is chosen.
      if (evicted === 0 && oldest.taken === oldest.records.length) await refill()
    }
    if (evicted === 0) return 0
    const victims = heads.filter((h) => h.victims.length > 0)
    const eviction = this.registry.reserveEviction(
      topic,
      new Map(victims.map((h) => [h.p, h.victims.map((r) => r.offset)])),
    )
    const deadLetter = topic.info.limits.deadLetter
    if (deadLetter !== null) {
      try {
        await this.ensureTopic(deadLetter, topic)
        const now = this.clock.now()
        await this.append(
          deadLetter,
          victims.flatMap((h) =>
            h.victims.map((r) => ({
              id: r.id,
              key: r.key,
              headers: deadLetterHeaders(r.headers, {
                topic: topic.name,
                partition: h.p,
                offset: r.offset,
                timestamp: r.timestamp,
                error: 'evicted by drop-oldest: the backlog was full',
                deadLetteredAt: now,
              }),
              payload: r.payload,
              format: r.format,
              deliverAt: 0,
            })),
          ),
        )
      } catch (err) {
        eviction.abort()
        throw err
      }
    }
    await eviction.complete()
    return evicted
  }

  /** The partition logs of a topic (for tools and tests inside the engine). */
  logsOf(topicName: string): readonly PartitionLog[] {
    return this.topic(topicName).logs
  }

  async close(): Promise<void> {
    if (this.closed) return
    await this.subscriptions?.settle().catch(() => undefined)
    this.closed = true
    this.stopRetention?.()
    for (const topic of this.topics.values())
      topic.flow.close(sluiceError(ErrorCode.Closed, 'the engine closed while this publish waited; nothing was stored'))
    // Subscription state is checkpointed while the logs are still open.
    await this.subscriptions?.close().catch(() => undefined)
    for (const topic of this.topics.values()) {
      for (const log of topic.logs) await log.close().catch(() => undefined)
    }
    this.topics.clear()
    if (this.spillDirectory !== null) await this.fs.removeTree(this.spillDirectory).catch(() => undefined)
    await this.lock?.release()
  }
}

/**
 * Whether records carry one producer's consecutive sequences (what a Sluice
 * publish sends): its id and first sequence; 'none' without producer ids;
 * null for anything else.
 */
function producerRun(records: readonly AppendRecord[]): { producerId: string; first: number } | 'none' | null {
  const head = records[0]
  if (head === undefined) return 'none'
  const producerId = head.producerId
  if (producerId === undefined) return records.every((r) => r.producerId === undefined) ? 'none' : null
  const first = head.sequence ?? 0
  for (let i = 1; i < records.length; i++) {
    const r = records[i]!
    if (r.producerId !== producerId || r.sequence !== first + i) return null
  }
  return { producerId, first }
}
