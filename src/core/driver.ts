import type { Capabilities } from './capabilities.ts'
import type { RedriveOptions, RedriveResult } from './dead-letters.ts'
import type { SluiceError } from './errors.ts'
import type {
  AppendRecord,
  CommitResult,
  ConsumerConfig,
  LeasedRecord,
  LeaseRef,
  Receipt,
  StoredRecord,
  TopicConfig,
  TopicInfo,
  TopicStats,
  TransactionOutput,
} from './types.ts'

/**
 * The contract every way of running Sluice implements: the embedded engine
 * (`file:`, `memory:`), the broker client (`sluice://`) and the drivers on
 * other engines. Small and batch-shaped; core (`Sluice`) does argument
 * checks, encoding and the handler runner on top of it, so those behave the
 * same everywhere.
 *
 * Drivers throw only `SluiceError`s, with the codes of `errors.ts`.
 */
export interface Driver {
  /** What this driver can do; `Sluice` turns a request for anything else into UNSUPPORTED. */
  readonly capabilities: Capabilities
  /** Creates a topic, or returns the existing one if every field the caller set matches (else CONFLICT). */
  createTopic(name: string, config: TopicConfig): Promise<TopicInfo>
  /** TOPIC_NOT_FOUND when absent. */
  describeTopic(name: string): Promise<TopicInfo>
  listTopics(): Promise<TopicInfo[]>
  /** Deletes a topic, its data and its subscriptions. TOPIC_NOT_FOUND when absent. */
  deleteTopic(name: string): Promise<void>
  /**
   * Stores records (partition chosen by key, round-robin without) and resolves
   * once they are stored as the topic's durability says. Checks every record
   * before storing any: one too large fails the batch with MESSAGE_TOO_LARGE.
   * Payloads may be views of the caller's memory: a driver copies or encodes
   * them before `append` returns, never later.
   */
  append(topic: string, records: readonly AppendRecord[], options?: AppendOptions): Promise<Receipt[]>
  /** Up to `max` records of one partition from `fromOffset` (or the first retained one). */
  read(topic: string, partition: number, fromOffset: number, max: number): Promise<StoredRecord[]>
  /**
   * Joins (creating on first use) a subscription as one more consumer.
   * TOPIC_NOT_FOUND when the topic is absent; CONFLICT when live consumers
   * of the subscription use another ordering or delivery.
   */
  openConsumer(topic: string, subscription: string, config: ConsumerConfig): Promise<DriverConsumer>
  /** Up to `max` messages the subscription has not acknowledged, oldest first per partition, without leasing them. */
  peek(topic: string, subscription: string, max: number): Promise<StoredRecord[]>
  /** Deletes a subscription and its state (its consumers are closed). TOPIC_NOT_FOUND / INVALID_ARGUMENT when absent. */
  deleteSubscription(topic: string, subscription: string): Promise<void>
  /**
   * Moves dead letters of `topic` (in `<topic>.dlq` or `deadLetterTopic`)
   * back, as `Sluice.redrive` says (see `redriveDeadLetters`), where the data is: the engine runs it on its own
   * handles, a client asks its broker to. `signal` stops it between moves
   * (over a broker: the broker stops when the request is given up on or the
   * connection drops). INVALID_ARGUMENT for bad options; a missing
   * dead-letter topic moves nothing.
   */
  redrive(topic: string, options: RedriveOptions, signal?: AbortSignal): Promise<RedriveResult>
  /** Figures of a topic and each of its subscriptions; recommendedConsumers aims at `targetTimeToEmptyMs` (default 60000). */
  stats(topic: string, options?: { targetTimeToEmptyMs?: number }): Promise<TopicStats>
  /** Stops the driver once in-flight work has settled. */
  close(): Promise<void>
}

/**
 * One consumer of a subscription. Leases are fenced by delivery attempt:
 * `ack`, `nack` and `extend` answer false (and change nothing) for a lease
 * that was lost.
 */
export interface DriverConsumer {
  /** Leases up to `max` messages; waits until there is at least one, the signal aborts (resolves []), or close. */
  lease(max: number, signal: AbortSignal): Promise<LeasedRecord[]>
  /** Acknowledges; resolves once recorded as the topic's durability says. */
  ack(refs: readonly LeaseRef[]): Promise<boolean[]>
  /** Gives messages back as failed: offered again after `delayMs` (null: the backoff), or dead-lettered. */
  nack(refs: readonly LeaseRef[], delayMs: number | null, reason: string): Promise<boolean[]>
  /**
   * Acknowledges one message and publishes `outputs` in one transaction: both
   * happen, or neither, also across a crash. `txId` names the transaction: a
   * repeat (after a lost answer) gets the first outcome instead of a second
   * transaction. `{ acked: false }` when the lease was lost.
   */
  commit(ref: LeaseRef, outputs: readonly TransactionOutput[], txId: string): Promise<CommitResult>
  /** Moves the leases' deadlines to `ms` from now (not past maxLeaseMs from their grant). */
  extend(refs: readonly LeaseRef[], ms: number): Promise<boolean[]>
  /** Gives back messages never handed to a handler: offered again at once, the attempt not counted. */
  release(refs: readonly LeaseRef[]): Promise<void>
  /** Called when a lease is lost (expired, or the consumer was cut off). */
  onLeaseLost(listener: (ref: LeaseRef) => void): void
  /**
   * Called once if the driver ends this consumer itself, with why (CLOSED:
   * its subscription or topic was deleted): its leases are gone and it gets
   * nothing more. Not called for `close()`.
   */
  onClosed(listener: (reason: SluiceError) => void): void
  /**
   * Leaves the subscription. `handed`: leases whose messages reached a
   * handler and are not settled (a drain that ran out of time, a close
   * without drain): they count as failed deliveries, offered again after the
   * backoff (or dead-lettered). Every other lease still held (prefetched, or
   * on its way to this consumer) is given back unstarted: offered again at
   * once, its delivery not counted. Without `handed` the consumer is taken to
   * be gone (crashed, cut off): every lease it held counts as failed.
   */
  close(handed?: readonly LeaseRef[]): Promise<void>
}

/** How an append may wait on a topic's flow control (`block` overflow, `wait` rate limit). */
export interface AppendOptions {
  /** The longest the append may wait for room or a rate slot. Default 30000. */
  readonly timeoutMs?: number
  /** Aborts the wait (over a broker: the client stops waiting; the append carries its sequence, so a retry is recognised). */
  readonly signal?: AbortSignal
  /** Called once if the append has to wait (for room or a rate slot); a broker stops counting it as busy work. */
  readonly onWait?: () => void
}

export type { Capabilities } from './capabilities.ts'
