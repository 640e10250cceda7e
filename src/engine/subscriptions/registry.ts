// Over 500 lines, for now: every subscription of every topic, its journal and its dispatchers; transactions
// and dead-lettering run here because they touch several subscriptions' state in one journal record.
import { join } from 'node:path'
import type { Clock } from '../../core/clock.ts'
import { deadLetterHeaders } from '../../core/dead-letters.ts'
import { drainFigures } from '../../core/drain.ts'
import { ErrorCode, sluiceError } from '../../core/errors.ts'
import type { PayloadFormat } from '../../core/codec.ts'
import { defaultPublishRetry, retrying } from '../../core/retry.ts'
import {
  DeliveryGuarantee,
  Durability,
  Ordering,
  StartAt,
  type AppendRecord,
  type CommitResult,
  type ConsumerConfig,
  type LeaseRef,
  type Receipt,
  type StoredRecord,
  type SubscriptionStats,
  type TransactionOutput,
} from '../../core/types.ts'
import type { FileSystem } from '../log/files.ts'
import { toStoredRecord, type LogRecord } from '../log/record.ts'
import type { Topic } from '../topic.ts'
import { EngineConsumer } from './consumer.ts'
import { Dispatcher } from './dispatcher.ts'
import { StateJournal, type StateOp } from './state-journal.ts'
import { applyAckRanges, newSubscriptionState, stateAsOps, type SubscriptionState } from './subscription-state.ts'

/** What the registry needs of the engine around it. */
export interface EngineServices {
  readonly clock: Clock
  topic(name: string): Topic
  /** Creates `name` shaped like `like` unless it exists. */
  ensureTopic(name: string, like: Topic): Promise<void>
  append(topic: string, records: readonly AppendRecord[]): Promise<Receipt[]>
  /** Throws what append would refuse (unknown topic, too large), without storing anything. */
  checkAppend(topic: string, records: readonly AppendRecord[]): void
  /**
   * Remembers, for deduplication, the records of `producerIds` stored in
   * `topic` at or after `sinceMs`, however long ago. Throws TOPIC_NOT_FOUND.
   */
  recallProducers(topic: string, producerIds: ReadonlySet<string>, sinceMs: number): Promise<void>
  /** A subscription of `topic` acknowledged `count` messages. */
  progressed(topic: Topic, count: number): void
}

/** The producer id of a transaction's outputs: their sequences are the outputs' places in the transaction. */
function txProducerId(txId: string): string {
  return `tx:${txId}`
}

/**
 * How far the clock may have stepped back between a commit and the storing of
 * its outputs (their timestamps are taken then): the search for them starts
 * this much before the commit.
 */
const clockStepMs = 60_000

/**
 * Every subscription of the engine: their durable state (one journal for
 * all), their dispatchers and consumers. State of `memory` topics is never
 * journaled.
 */
export class SubscriptionRegistry {
  private readonly states = new Map<string, Map<string, SubscriptionState>>()
  /** Per topic and partition, the offset below which drop-oldest evicted everything. */
  private readonly dropFloors = new Map<string, number[]>()
  /**
   * Per topic and partition, offsets at or above the drop floor that
   * drop-oldest evicted past messages a subscription held: a subscription
   * created later must not get them either.
   */
  private readonly evictedAbove = new Map<string, Set<number>[]>()
  /** Transactions journaled whose outputs are not all stored yet, by id. */
  private readonly pendingTx = new Map<string, Extract<StateOp, { t: 'tx' }>>()
  /** Recent commits by transaction id, so a repeated commit gets the first outcome (if it names the same message). */
  private readonly commits = new Map<string, { readonly message: string; readonly result: Promise<CommitResult> }>()
  private readonly dispatchers = new Map<string, Map<string, Dispatcher>>()
  private journal: StateJournal | null = null

  private constructor(private readonly services: EngineServices) {}

  /** Loads the subscription state of a data directory (`dir` undefined: memory only). */
  static async open(dir: string | undefined, fs: FileSystem, services: EngineServices): Promise<SubscriptionRegistry> {
    const registry = new SubscriptionRegistry(services)
    if (dir !== undefined) {
      registry.journal = await StateJournal.open(
        join(dir, 'state'),
        fs,
        (op) => registry.apply(op),
        () => registry.snapshot(),
      )
    }
    return registry
  }

  private apply(op: StateOp): void {
    const subs = this.states.get(op.topic)
    switch (op.t) {
      case 'create': {
        const map = subs ?? new Map<string, SubscriptionState>()
        this.states.set(op.topic, map)
        if (!map.has(op.sub)) {
          map.set(
            op.sub,
            newSubscriptionState(
              op.topic,
              op.sub,
              op.ordering as Ordering,
              op.delivery as DeliveryGuarantee,
              op.floors,
            ),
          )
        }
        return
      }
      case 'config': {
        const state = subs?.get(op.sub)
        if (state === undefined) return
        state.ordering = op.ordering as Ordering
        state.delivery = op.delivery as DeliveryGuarantee
        return
      }
      case 'ack': {
        const partition = subs?.get(op.sub)?.partitions[op.p]
        if (partition !== undefined) applyAckRanges(partition, op.r)
        return
      }
      case 'unack': {
        const partition = subs?.get(op.sub)?.partitions[op.p]
        if (partition !== undefined) for (const offset of op.o) partition.acks.remove(offset)
        return
      }
      case 'try': {
        const partition = subs?.get(op.sub)?.partitions[op.p]
        if (partition === undefined) return
        op.o.forEach((offset, i) => {
          if (!partition.acks.has(offset)) partition.attempts.set(offset, op.n[i]!)
        })
        return
      }
      case 'drop-sub':
        subs?.delete(op.sub)
        return
      case 'drop-topic':
        this.states.delete(op.topic)
        this.dropFloors.delete(op.topic)
        this.evictedAbove.delete(op.topic)
        return
      case 'tx': {
        const partition = subs?.get(op.sub)?.partitions[op.p]
        if (partition !== undefined) applyAckRanges(partition, [op.o, op.o + 1])
        this.pendingTx.set(op.id, op)
        // A commit repeated after a restart (its answer lost) is recognised; the receipts are not kept.
        this.commits.set(op.id, {
          message: committedMessage(op.topic, op.sub, op.p, op.o),
          result: Promise.resolve({ acked: true, receipts: [] }),
        })
        return
      }
      case 'tx-done':
        this.pendingTx.delete(op.id)
        return
      case 'evict':
        this.raiseDropFloor(op.topic, op.p, op.before, op.o ?? [])
        return
    }
  }

  private snapshot(): StateOp[] {
    const ops: StateOp[] = []
    for (const [topicName, subs] of this.states) {
      let durability: Durability
      try {
        durability = this.services.topic(topicName).info.durability
      } catch {
        continue
      }
      if (durability === Durability.Memory) continue
      for (const state of subs.values()) ops.push(...stateAsOps(state))
    }
    // Transactions whose outputs are not all stored yet must survive the snapshot.
    ops.push(...this.pendingTx.values())
    for (const [topic, floors] of this.dropFloors) {
      floors.forEach((before, p) => {
        const above = this.evictedAbove.get(topic)?.[p]
        ops.push({
          t: 'evict',
          topic,
          p,
          before,
          ...(above === undefined || above.size === 0 ? {} : { o: [...above] }),
        })
      })
    }
    return ops
  }

  /** Journals operations of a topic's subscriptions: fsynced for `fsync` topics and for exactly-once subscriptions. */
  private persist(topic: Topic, ops: StateOp[], alwaysSync = false): Promise<void> {
    if (this.journal === null || topic.info.durability === Durability.Memory) return Promise.resolve()
    return this.journal.append(ops, alwaysSync || topic.info.durability === Durability.Fsync)
  }

  /** Starts dispatchers for the loaded state of a topic (at open); drops state that no longer fits it. */
  attach(topic: Topic): void {
    const subs = this.states.get(topic.name)
    if (subs === undefined) return
    for (const [name, state] of subs) {
      if (state.partitions.length !== topic.info.partitions) {
        subs.delete(name)
        continue
      }
      this.startDispatcher(topic, state)
    }
  }

  private startDispatcher(topic: Topic, state: SubscriptionState): Dispatcher {
    const dispatcher = new Dispatcher(state, {
      clock: this.services.clock,
      logs: topic.logs,
      persist: (ops) => this.persist(topic, ops, state.delivery === DeliveryGuarantee.ExactlyOnce),
      progressed: (count) => this.services.progressed(topic, count),
      persistUnsynced: (ops) =>
        this.journal === null || topic.info.durability === Durability.Memory
          ? Promise.resolve()
          : this.journal.append(ops, false),
      deadLetter: (record, partition, attempts, reason, deadLetterTopic) =>
        this.deadLetter(topic, state.name, record, partition, attempts, reason, deadLetterTopic),
    })
    let map = this.dispatchers.get(topic.name)
    if (map === undefined) {
      map = new Map()
      this.dispatchers.set(topic.name, map)
    }
    map.set(state.name, dispatcher)
    return dispatcher
  }

  private async deadLetter(
    source: Topic,
    subscription: string,
    record: LogRecord,
    partition: number,
    attempts: number,
    reason: string,
    deadLetterTopic: string,
  ): Promise<void> {
    await this.services.ensureTopic(deadLetterTopic, source)
    const headers = deadLetterHeaders(record.headers, {
      topic: source.name,
      partition,
      offset: record.offset,
      timestamp: record.timestamp,
      subscription,
      attempts,
      error: reason,
      deadLetteredAt: this.services.clock.now(),
    })
    await this.services.append(deadLetterTopic, [
      { id: record.id, key: record.key, headers, payload: record.payload, format: record.format, deliverAt: 0 },
    ])
  }

  private dispatcher(topic: string, name: string): Dispatcher | undefined {
    return this.dispatchers.get(topic)?.get(name)
  }

  /** Joins (creating on first use) a subscription. The caller holds the topic's lock. */
  async openConsumer(topic: Topic, name: string, config: ConsumerConfig): Promise<EngineConsumer> {
    if (config.ordering === Ordering.Global && topic.info.partitions !== 1) {
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `ordering 'global' needs a topic with 1 partition; topic ${JSON.stringify(topic.name)} has ${topic.info.partitions}. Use ordering 'partition' or 'key', or a 1-partition topic`,
        { details: { topic: topic.name, partitions: topic.info.partitions } },
      )
    }
    let dispatcher = this.dispatcher(topic.name, name)
    if (dispatcher === undefined) {
      const floors = topic.logs.map((log, p) =>
        config.startAt === StartAt.Latest ? log.endOffset : Math.max(log.startOffset, this.dropFloor(topic, p)),
      )
      const state = newSubscriptionState(topic.name, name, config.ordering, config.delivery, floors)
      // Evicted past a message some subscription held: gone for this one too.
      state.partitions.forEach((partition, p) => {
        for (const offset of this.evictedAbove.get(topic.name)?.[p] ?? []) {
          if (offset >= partition.acks.floor) partition.acks.add(offset)
        }
      })
      await this.persist(topic, stateAsOps(state))
      let subs = this.states.get(topic.name)
      if (subs === undefined) {
        subs = new Map()
        this.states.set(topic.name, subs)
      }
      subs.set(name, state)
      dispatcher = this.startDispatcher(topic, state)
    } else if (dispatcher.state.ordering !== config.ordering || dispatcher.state.delivery !== config.delivery) {
      if (dispatcher.holders.size > 0) {
        throw sluiceError(
          ErrorCode.Conflict,
          `subscription ${JSON.stringify(name)} of topic ${JSON.stringify(topic.name)} has consumers with ordering '${dispatcher.state.ordering}' and delivery '${dispatcher.state.delivery}'; ` +
            `every consumer of a subscription must use the same ordering and delivery (close them first to change it)`,
          {
            details: {
              topic: topic.name,
              subscription: name,
              ordering: dispatcher.state.ordering,
              delivery: dispatcher.state.delivery,
            },
          },
        )
      }
      // No consumers: the subscription takes the new settings, its window rebuilt from the floor.
      dispatcher.close('subscription settings changed')
      dispatcher.state.ordering = config.ordering
      dispatcher.state.delivery = config.delivery
      await this.persist(topic, [
        { t: 'config', topic: topic.name, sub: name, ordering: config.ordering, delivery: config.delivery },
      ])
      dispatcher = this.startDispatcher(topic, dispatcher.state)
    }
    const live = dispatcher
    const consumer = new EngineConsumer(dispatcher, config, (holder, ref, outputs, txId) =>
      this.commit(topic, live, holder, ref, outputs, txId),
    )
    dispatcher.addHolder(consumer)
    return consumer
  }

  /**
   * Acknowledges a message and publishes outputs as one transaction: the
   * transaction is journaled (fsynced) first, then the message is done and
   * the outputs are stored. A crash after the journal write is finished on
   * open (`resumeTransactions`).
   */
  private commit(
    topic: Topic,
    dispatcher: Dispatcher,
    holder: EngineConsumer,
    ref: LeaseRef,
    outputs: readonly TransactionOutput[],
    txId: string,
  ): Promise<CommitResult> {
    const message = committedMessage(topic.name, dispatcher.name, ref.partition, ref.offset)
    const earlier = this.commits.get(txId)
    if (earlier !== undefined) {
      if (earlier.message === message) return earlier.result
      // Another message's transaction id: answering with that outcome would report this message acknowledged.
      return Promise.reject(
        sluiceError(
          ErrorCode.InvalidArgument,
          `transaction id ${JSON.stringify(txId)} was already used for another message; give every commit a new id`,
          { details: { txId } },
        ),
      )
    }
    const lease = dispatcher.leaseFor(holder, ref)
    if (lease === null) return Promise.resolve({ acked: false, receipts: [] })
    // Everything that can be refused is refused before anything is written.
    for (const output of outputs) this.services.checkAppend(output.topic, output.records)
    const op: Extract<StateOp, { t: 'tx' }> = {
      t: 'tx',
      id: txId,
      at: this.services.clock.now(),
      topic: topic.name,
      sub: dispatcher.name,
      p: ref.partition,
      o: ref.offset,
      out: outputs.map((output) => ({
        topic: output.topic,
        records: output.records.map((r) => ({
          id: r.id,
          key: r.key,
          headers: r.headers,
          payload: r.payload,
          format: r.format,
          deliverAt: r.deliverAt,
          idFromProducer: r.idFromProducer === true,
        })),
      })),
    }
    const deadline = lease.deadline
    // Held while the journal is written: a heartbeat's extend must not find the lease overdue meanwhile.
    dispatcher.hold(lease, 300_000)
    dispatcher.beginCommit(lease)
    const result = (async (): Promise<CommitResult> => {
      if (this.journal !== null) {
        try {
          await this.journal.append([op], true)
        } catch (err) {
          // Nothing was committed: the lease keeps its own deadline (not the 5 minutes held for the commit).
          dispatcher.abortCommit(lease, deadline)
          throw err
        }
      }
      dispatcher.completeCommitted(lease)
      this.pendingTx.set(txId, op)
      return { acked: true, receipts: await this.publishOutputs(op) }
    })()
    this.commits.set(txId, { message, result })
    if (this.commits.size > 10_000) this.commits.delete(this.commits.keys().next().value!)
    result.catch(() => this.commits.delete(txId))
    return result
  }

  /**
   * Stores a committed transaction's outputs (again, after a crash: the
   * producer id `txProducerId(op.id)` makes repeats harmless, see
   * `resumeTransactions`).
   */
  private async publishOutputs(op: Extract<StateOp, { t: 'tx' }>): Promise<Receipt[][]> {
    let sequence = 0
    const receipts: Receipt[][] = []
    for (const output of op.out) {
      const records: AppendRecord[] = output.records.map((r) => ({
        id: r.id,
        key: r.key,
        headers: { ...r.headers },
        payload: r.payload,
        format: r.format as PayloadFormat,
        deliverAt: r.deliverAt,
        idFromProducer: r.idFromProducer,
        producerId: txProducerId(op.id),
        sequence: sequence++,
      }))
      receipts.push(
        await retrying(() => this.services.append(output.topic, records), defaultPublishRetry, this.services.clock),
      )
    }
    this.pendingTx.delete(op.id)
    if (this.journal !== null)
      void this.journal.append([{ t: 'tx-done', id: op.id, topic: op.topic }], false).catch(() => undefined)
    return receipts
  }

  /**
   * Finishes transactions journaled before a crash whose outputs may not all
   * be stored. Those stored already are found in the output topics first,
   * from the commit's time on: the crash (or the failure that kept a
   * transaction pending) may be older than any deduplication window, and a
   * window would then let the outputs be stored twice.
   */
  async resumeTransactions(): Promise<void> {
    const pending = [...this.pendingTx.values()]
    const outputs = new Map<string, { producerIds: Set<string>; sinceMs: number }>()
    for (const op of pending) {
      for (const output of op.out) {
        const entry = outputs.get(output.topic) ?? { producerIds: new Set<string>(), sinceMs: Infinity }
        entry.producerIds.add(txProducerId(op.id))
        // Journals written before commits carried their time: search the whole topic.
        entry.sinceMs = Math.min(entry.sinceMs, typeof op.at === 'number' ? op.at - clockStepMs : 0)
        outputs.set(output.topic, entry)
      }
    }
    for (const [topic, { producerIds, sinceMs }] of outputs) {
      try {
        await this.services.recallProducers(topic, producerIds, sinceMs)
      } catch {
        // The output topic is gone: publishing fails too, and the transaction stays pending.
      }
    }
    for (const op of pending) {
      try {
        await this.publishOutputs(op)
      } catch {
        // An output topic is gone or the disk is full: it stays pending, retried at the next open.
      }
    }
  }

  /** Unacknowledged records of a subscription without leasing them; a subscription that does not exist yet sees everything stored. */
  async peek(topic: Topic, name: string, max: number): Promise<StoredRecord[]> {
    const dispatcher = this.dispatcher(topic.name, name)
    if (dispatcher !== undefined) {
      return (await dispatcher.peek(max)).map(({ partition, record }) => toStoredRecord(record, partition))
    }
    const out: StoredRecord[] = []
    for (let p = 0; p < topic.logs.length && out.length < max; p++) {
      const log = topic.logs[p]!
      const evicted = this.evictedAbove.get(topic.name)?.[p]
      for (const record of await log.read(Math.max(log.startOffset, this.dropFloor(topic, p)), max - out.length)) {
        if (evicted?.has(record.offset) !== true) out.push(toStoredRecord(record, p))
      }
    }
    return out
  }

  async deleteSubscription(topic: Topic, name: string): Promise<void> {
    const dispatcher = this.dispatcher(topic.name, name)
    if (dispatcher === undefined) {
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `topic ${JSON.stringify(topic.name)} has no subscription ${JSON.stringify(name)}`,
        {
          details: { topic: topic.name, subscription: name },
        },
      )
    }
    this.closeDispatcher(dispatcher, `subscription ${name} was deleted`)
    this.dispatchers.get(topic.name)?.delete(name)
    this.states.get(topic.name)?.delete(name)
    await this.persist(topic, [{ t: 'drop-sub', topic: topic.name, sub: name }])
  }

  private closeDispatcher(dispatcher: Dispatcher, reason: string): void {
    const err = sluiceError(ErrorCode.Closed, reason, {
      details: { topic: dispatcher.topic, subscription: dispatcher.name },
    })
    for (const holder of [...dispatcher.holders]) holder.kill(err)
    dispatcher.close(reason)
  }

  /** The topic is being deleted: its subscriptions go with it. */
  async dropTopic(topic: Topic): Promise<void> {
    for (const dispatcher of this.dispatchers.get(topic.name)?.values() ?? []) {
      this.closeDispatcher(dispatcher, `topic ${topic.name} was deleted`)
    }
    this.dispatchers.delete(topic.name)
    this.states.delete(topic.name)
    this.dropFloors.delete(topic.name)
    this.evictedAbove.delete(topic.name)
    await this.persist(topic, [{ t: 'drop-topic', topic: topic.name }])
  }

  /**
   * Per partition, the offset below which nothing is needed any more: every
   * subscription acknowledged it (or drop-oldest evicted it); null when
   * nothing says so (no subscriptions, nothing evicted).
   */
  consumedBefore(topic: Topic, partition: number): number | null {
    const evicted = this.dropFloor(topic, partition)
    const map = this.dispatchers.get(topic.name)
    if (map === undefined || map.size === 0) return evicted > 0 ? evicted : null
    let floor = Infinity
    for (const dispatcher of map.values()) floor = Math.min(floor, dispatcher.floor(partition))
    return Math.max(floor, evicted)
  }

  subscriptionCount(topic: Topic): number {
    return this.dispatchers.get(topic.name)?.size ?? 0
  }

  /** The first offset of the backlog of a partition: its oldest message some subscription still needs. */
  backlogHead(topic: Topic, partition: number): number {
    const log = topic.logs[partition]!
    return Math.max(log.startOffset, this.consumedBefore(topic, partition) ?? log.startOffset)
  }

  /**
   * Backlog messages of a partition counted exactly, acknowledgements out of
   * order included: the most any one subscription has not acknowledged (all
   * stored from the backlog head without subscriptions).
   */
  unackedCount(topic: Topic, partition: number): number {
    const log = topic.logs[partition]!
    const head = this.backlogHead(topic, partition)
    const map = this.dispatchers.get(topic.name)
    if (map === undefined || map.size === 0) {
      let evicted = 0
      for (const offset of this.evictedAbove.get(topic.name)?.[partition] ?? []) if (offset >= head) evicted++
      return Math.max(0, log.endOffset - head - evicted)
    }
    let most = 0
    for (const dispatcher of map.values()) most = Math.max(most, dispatcher.unackedFrom(partition, head))
    return most
  }

  /** Whether every subscription has acknowledged a message (false without subscriptions: it is backlog). */
  ackedByAll(topic: Topic, partition: number, offset: number): boolean {
    const map = this.dispatchers.get(topic.name)
    if (map === undefined || map.size === 0) return false
    for (const dispatcher of map.values()) if (!dispatcher.isAcked(partition, offset)) return false
    return true
  }

  /** Everything below this was evicted by drop-oldest. */
  dropFloor(topic: Topic, partition: number): number {
    return this.dropFloors.get(topic.name)?.[partition] ?? 0
  }

  /**
   * Whether drop-oldest may evict a message: some subscription has not
   * acknowledged it (or there is none), and no subscription holds it
   * (leased, being dead-lettered, reserved by an eviction): a message in
   * flight is never evicted, so its handler's success counts and its key
   * stays held until the handler ends.
   */
  evictable(topic: Topic, partition: number, offset: number): boolean {
    if (this.evictedAbove.get(topic.name)?.[partition]?.has(offset) === true) return false
    const map = this.dispatchers.get(topic.name)
    if (map === undefined || map.size === 0) return true
    let unacked = false
    for (const dispatcher of map.values()) {
      if (dispatcher.holds(partition, offset)) return false
      if (!dispatcher.isAcked(partition, offset)) unacked = true
    }
    return unacked
  }

  /** Messages the subscriptions of a topic hold (an upper bound): how many an eviction may pass over. */
  heldCount(topic: Topic): number {
    let n = 0
    for (const dispatcher of this.dispatchers.get(topic.name)?.values() ?? []) n += dispatcher.heldCount
    return n
  }

  /**
   * drop-oldest, step one: reserves the chosen messages (each `evictable`
   * now: call it in the same turn) in every subscription, so that none is
   * leased or acknowledged while their dead letters are written. Then
   * `complete` (the dead letters are stored: the messages are acknowledged
   * as dropped in each subscription that had not acknowledged them, and the
   * eviction floor advances past what is gone) or `abort` (offered again).
   */
  reserveEviction(topic: Topic, victims: ReadonlyMap<number, readonly number[]>): Eviction {
    const reserved: { dispatcher: Dispatcher; partition: number; offsets: number[] }[] = []
    for (const dispatcher of this.dispatchers.get(topic.name)?.values() ?? []) {
      for (const [partition, offsets] of victims) {
        reserved.push({ dispatcher, partition, offsets: dispatcher.reserveEviction(partition, offsets) })
      }
    }
    return {
      complete: async () => {
        const acks = reserved.map(({ dispatcher, partition, offsets }) =>
          dispatcher.completeEviction(partition, offsets).catch(() => undefined),
        )
        const floors: StateOp[] = []
        for (const [partition, offsets] of victims) {
          const before = this.passEvicted(topic, partition, new Set(offsets), Math.max(...offsets) + 1)
          const above = offsets.filter((o) => o >= before)
          this.raiseDropFloor(topic.name, partition, before, above)
          floors.push({
            t: 'evict',
            topic: topic.name,
            p: partition,
            before,
            ...(above.length > 0 ? { o: above } : {}),
          })
        }
        await Promise.all(acks)
        if (floors.length > 0 && this.journal !== null && topic.info.durability !== Durability.Memory) {
          await this.journal.append(floors, false)
        }
      },
      abort: () => {
        for (const { dispatcher, partition, offsets } of reserved) dispatcher.abortEviction(partition, offsets)
      },
    }
  }

  /**
   * Moves a partition's eviction floor (for reads, new subscriptions and
   * retention) over the messages from the backlog head up to `upTo` that are
   * gone: evicted (now or before), or acknowledged by every subscription and
   * held by none. Returns where the floor goes (it only moves up).
   */
  private passEvicted(topic: Topic, partition: number, evicted: ReadonlySet<number>, upTo: number): number {
    const map = this.dispatchers.get(topic.name)
    const before = this.evictedAbove.get(topic.name)?.[partition]
    const gone = (offset: number): boolean => {
      if (map === undefined || map.size === 0) return evicted.has(offset) || before?.has(offset) === true
      for (const dispatcher of map.values()) {
        if (!dispatcher.isAcked(partition, offset) || dispatcher.holds(partition, offset)) return false
      }
      return true
    }
    let floor = Math.max(this.dropFloor(topic, partition), this.backlogHead(topic, partition))
    while (floor < upTo && gone(floor)) floor++
    return floor
  }

  /** Raises a partition's drop floor to `before` and notes `above`, offsets evicted above it; forgets those below. */
  private raiseDropFloor(topic: string, partition: number, before: number, above: readonly number[]): void {
    const floors = this.dropFloors.get(topic) ?? []
    const floor = Math.max(floors[partition] ?? 0, before)
    floors[partition] = floor
    this.dropFloors.set(topic, floors)
    const sets = this.evictedAbove.get(topic) ?? []
    const set = sets[partition] ?? new Set<number>()
    for (const offset of above) set.add(offset)
    for (const offset of set) if (offset < floor) set.delete(offset)
    sets[partition] = set
    this.evictedAbove.set(topic, sets)
  }

  /** Retention deleted a partition's data below `startOffset`. */
  retentionDeleted(topic: Topic, partition: number, startOffset: number): void {
    for (const dispatcher of this.dispatchers.get(topic.name)?.values() ?? [])
      dispatcher.retentionDeleted(partition, startOffset)
  }

  async stats(topic: Topic, arrivalRate: number, targetTimeToEmptyMs: number): Promise<SubscriptionStats[]> {
    const out: SubscriptionStats[] = []
    const now = this.services.clock.now()
    for (const dispatcher of this.dispatchers.get(topic.name)?.values() ?? []) {
      const oldest = await dispatcher.oldestUnackedTimestamp()
      const depth = dispatcher.depth()
      const processingRate = dispatcher.processingRate.perSecond(now)
      const consumers = dispatcher.holders.size
      out.push({
        subscription: dispatcher.name,
        ordering: dispatcher.state.ordering,
        delivery: dispatcher.state.delivery,
        depth,
        inFlight: dispatcher.inFlight,
        delayed: dispatcher.delayedCount,
        consumers: dispatcher.holders.size,
        ...dispatcher.counters,
        oldestUnackedAgeMs: oldest === null ? null : Math.max(0, now - oldest),
        arrivalRate,
        processingRate,
        ...drainFigures(depth, arrivalRate, processingRate, consumers, targetTimeToEmptyMs),
      })
    }
    return out.sort((a, b) => a.subscription.localeCompare(b.subscription))
  }

  /** Waits for dead letters being stored (before close, so each message is dead-lettered once). */
  async settle(): Promise<void> {
    for (const map of this.dispatchers.values()) for (const d of map.values()) await Promise.all([...d.dying])
  }

  async close(): Promise<void> {
    for (const map of this.dispatchers.values()) {
      for (const dispatcher of map.values()) this.closeDispatcher(dispatcher, 'the engine is closed')
    }
    this.dispatchers.clear()
    await this.journal?.close()
  }
}

/** A drop-oldest eviction under way: its messages are reserved until it completes or aborts. */
export interface Eviction {
  /** The dead letters are stored (or there are none to store): the messages are gone. */
  complete(): Promise<void>
  /** The dead letters could not be stored: the messages are offered again. */
  abort(): void
}

/** Names the message a transaction acknowledges, to tell a repeated commit from a reused transaction id. */
function committedMessage(topic: string, subscription: string, partition: number, offset: number): string {
  return `${topic}\u0000${subscription}\u0000${partition}\u0000${offset}`
}
