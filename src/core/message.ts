import { decodePayload, type Codec } from './codec.ts'
import { ErrorCode, hasCode, sluiceError } from './errors.ts'
import {
  DeliveryGuarantee,
  type CommitResult,
  type Headers,
  type LeasedRecord,
  type LeaseRef,
  type OutgoingMessage,
  type Receipt,
  type StoredMessage,
} from './types.ts'

/** A message handed to a handler (or an iterator) under a lease. */
export interface Message<T = unknown> extends StoredMessage<T> {
  /** 1 on the first delivery, then one more per redelivery. */
  readonly attempt: number
  /** Aborts when the lease is lost (expired, consumer cut off) or the subscription closes without draining. */
  readonly signal: AbortSignal
  /**
   * Acknowledges: resolves once recorded as the topic's durability says; the
   * message is then never delivered again to this subscription. Throws
   * LEASE_LOST when the lease was lost (another delivery may be running).
   *
   * With `publish`, the acknowledgement and the publishing of those messages
   * are one transaction (consume-transform-produce): both happen or neither,
   * also across a crash; resolves with the receipts of the published messages.
   * UNSUPPORTED on a runtime without `transactions` (the message stays unsettled).
   */
  ack(options?: { publish?: readonly TransactionMessage[] }): Promise<Receipt[]>
  /** Gives the message back as failed: offered again after `delayMs` (default: the backoff), or dead-lettered after maxAttempts. */
  nack(options?: { delayMs?: number; reason?: string }): Promise<void>
  /** Extends the lease by `ms` from now (up to maxLeaseMs); throws LEASE_LOST when it was lost. */
  extend(ms: number): Promise<void>
}

export type Handler<T = unknown> = (message: Message<T>) => unknown

/** A message to publish as part of an acknowledgement: where to, and what. */
export interface TransactionMessage<T = unknown> extends OutgoingMessage<T> {
  readonly topic: string
}

/** How a leased message reaches its consumer (batched by the runner). */
export interface LeaseOps {
  ack(ref: LeaseRef): Promise<boolean>
  nack(ref: LeaseRef, delayMs: number | null, reason: string): Promise<boolean>
  extend(ref: LeaseRef, ms: number): Promise<boolean>
  /** Acknowledge and publish in one transaction. */
  commit(ref: LeaseRef, messages: readonly TransactionMessage[]): Promise<CommitResult>
}

/** The runner's handle on a leased message: the public Message plus its lease bookkeeping. */
export class LeasedMessage<T = unknown> implements Message<T> {
  readonly id: string
  readonly key: string | null
  readonly headers: Headers
  readonly topic: string
  readonly partition: number
  readonly offset: number
  readonly timestamp: number
  readonly deliverAt: number | null
  readonly attempt: number
  readonly ref: LeaseRef
  /** partition and offset as one number (see `leaseKey` in the engine). */
  readonly refKey: number
  /** Made on first use of `signal`: most handlers never look at it, and an AbortController is not free. */
  private controller: AbortController | null = null
  private abortReason: unknown = undefined
  private settlement: Promise<void> | null = null
  private receipts: Receipt[] = []
  private decoded: { value: T } | null = null
  /** When the lease was granted, for maxLeaseMs. */
  readonly leasedAt: number
  lost = false

  constructor(
    topic: string,
    private readonly record: LeasedRecord,
    private readonly ops: LeaseOps,
    private readonly delivery: DeliveryGuarantee,
    private readonly codec: Codec | undefined,
    now: number,
  ) {
    this.id = record.id
    this.key = record.key
    this.headers = record.headers
    this.topic = topic
    this.partition = record.partition
    this.offset = record.offset
    this.timestamp = record.timestamp
    this.deliverAt = record.deliverAt === 0 ? null : record.deliverAt
    this.attempt = record.attempt
    // The record names its own lease (partition, offset, attempt): no copy needed.
    this.ref = record
    this.refKey = record.offset * 1024 + record.partition
    this.leasedAt = now
  }

  /** Decoded on first use: a payload that does not decode fails the handler (and is retried, then dead-lettered). */
  get data(): T {
    this.decoded ??= { value: decodePayload(this.record.payload, this.record.format, this.codec) as T }
    return this.decoded.value
  }

  get signal(): AbortSignal {
    if (this.controller === null) {
      this.controller = new AbortController()
      if (this.abortReason !== undefined) this.controller.abort(this.abortReason)
    }
    return this.controller.signal
  }

  /** Whether ack or nack has been called. */
  get settled(): boolean {
    return this.settlement !== null
  }

  private leaseLost(what: string): never {
    throw sluiceError(
      ErrorCode.LeaseLost,
      `${what} of message ${this.id} (${this.topic}/${this.partition}@${this.offset}, attempt ${this.attempt}) was refused: its lease was lost, so it may be delivered again`,
      { details: { topic: this.topic, partition: this.partition, offset: this.offset, attempt: this.attempt } },
    )
  }

  ack(options: { publish?: readonly TransactionMessage[] } = {}): Promise<Receipt[]> {
    if (this.settlement !== null) return this.settlement.then(() => this.receipts)
    const publish = options.publish
    if (publish !== undefined && publish.length > 0) {
      if (this.delivery === DeliveryGuarantee.AtMostOnce) {
        return Promise.reject(
          sluiceError(
            ErrorCode.InvalidArgument,
            'ack({ publish }) needs at-least-once or exactly-once delivery: at-most-once messages are acknowledged before the handler runs',
          ),
        )
      }
      const settlement = Promise.resolve()
        .then(() => this.ops.commit(this.ref, publish))
        .then((result) => {
          if (!result.acked) this.leaseLost('the acknowledgement (and its publishes)')
          this.receipts = result.receipts.flat()
        })
      this.settlement = settlement
      // Refused before anything happened (a bad or unknown output topic, a message too large): still unsettled.
      settlement.catch((err: unknown) => {
        if (!hasCode(err, ErrorCode.LeaseLost) && this.settlement === settlement) this.settlement = null
      })
    } else {
      this.settlement = this.ops.ack(this.ref).then((ok) => {
        // At-most-once messages were acknowledged when handed out; a late ack only releases their order.
        if (!ok && this.delivery !== DeliveryGuarantee.AtMostOnce) this.leaseLost('the acknowledgement')
      })
    }
    return this.settlement.then(() => this.receipts)
  }

  nack(options: { delayMs?: number; reason?: string } = {}): Promise<void> {
    if (options.delayMs !== undefined && (!Number.isSafeInteger(options.delayMs) || options.delayMs < 0)) {
      return Promise.reject(
        sluiceError(
          ErrorCode.InvalidArgument,
          `nack delayMs must be a non-negative integer, got ${String(options.delayMs)}`,
        ),
      )
    }
    this.settlement ??= this.ops
      .nack(this.ref, options.delayMs ?? null, options.reason ?? 'nacked by the consumer')
      .then(() => undefined)
    return this.settlement
  }

  async extend(ms: number): Promise<void> {
    if (!Number.isSafeInteger(ms) || ms <= 0)
      throw sluiceError(ErrorCode.InvalidArgument, `extend takes a positive integer of milliseconds, got ${String(ms)}`)
    const ok = await this.ops.extend(this.ref, ms)
    if (!ok) {
      this.markLost()
      this.leaseLost('extending the lease')
    }
  }

  /** The lease is gone: tell the handler through its signal. */
  markLost(): void {
    this.lost = true
    this.abort(sluiceError(ErrorCode.LeaseLost, `the lease on message ${this.id} was lost`))
  }

  /** The subscription closes without draining. */
  abort(reason: unknown): void {
    this.abortReason ??= reason
    this.controller?.abort(reason)
  }
}
