import type { DriverConsumer } from '../core/driver.ts'
import { asSluiceError, ErrorCode, type SluiceError, sluiceError } from '../core/errors.ts'
import type { CommitResult, ConsumerConfig, LeasedRecord, LeaseRef, TransactionOutput } from '../core/types.ts'
import { Op } from '../protocol/ops.ts'
import { decodeLeasedRecord, decodeRef, encodeAppendRecord, encodeRef } from '../protocol/wire.ts'
import type { ClientConnection } from './connection.ts'

function keyOf(ref: LeaseRef): number {
  return ref.offset * 1024 + ref.partition
}

/**
 * A consumer over the broker protocol. `lease(max)` grants the broker credit
 * for what it lacks and waits for deliveries; the broker never pushes more
 * than the credit. After a lost connection the leases it held are gone (the
 * broker gave them back to the subscription): they are reported lost, and
 * the consumer is opened again on the new connection.
 */
export class RemoteConsumer implements DriverConsumer {
  private buffer: LeasedRecord[] = []
  /** Credit granted and not yet used by deliveries. */
  private outstanding = 0
  /** Records handed to the runner and not yet settled, by lease key. */
  private readonly handedOut = new Map<number, LeaseRef>()
  private waiter: {
    max: number
    resolve: (records: LeasedRecord[]) => void
    reject: (err: SluiceError) => void
  } | null = null
  /** Why the broker refused the last reopen; the consumer is not open there until a reopen succeeds. */
  private refused: SluiceError | null = null
  private readonly lostListeners: ((ref: LeaseRef) => void)[] = []
  private readonly closedListeners: ((reason: SluiceError) => void)[] = []
  /** Why the broker ended this consumer, when it did. */
  private endedBy: SluiceError | null = null
  private closed = false

  constructor(
    readonly id: number,
    private readonly connection: ClientConnection,
    private readonly topic: string,
    private readonly subscription: string,
    private readonly config: ConsumerConfig,
    /** Takes it off the driver's list: it gets no more frames. */
    private readonly forget: (consumer: RemoteConsumer) => void,
  ) {}

  /** Opens this consumer on the broker. */
  async open(urgent = false): Promise<void> {
    // A lease call waiting across the reconnect gets its credit back with the reopen.
    const credit = this.waiter === null ? 0 : this.waiter.max
    this.outstanding = credit
    await this.connection.request(
      Op.OpenConsumer,
      { consumer: this.id, topic: this.topic, subscription: this.subscription, config: this.config, credit },
      { urgent },
    )
    this.refused = null
  }

  /**
   * Reopens this consumer on a new connection. A refusal (the topic was deleted meanwhile, a request timed out)
   * does not end the consumer: like a Kafka consumer whose topic is missing, it keeps trying while its owner
   * wants messages. The waiting lease call fails with the broker's error (the runner reports it to onError and
   * calls again after its backoff) and each later lease call tries the reopen again, so the consumer is back
   * when the broker lets it, and is never silently dead. A consumer that should stop is closed by its owner.
   */
  async reopen(): Promise<void> {
    try {
      await this.open(true)
    } catch (err) {
      if (this.closed) return
      this.refused = asSluiceError(err)
      const waiter = this.waiter
      this.waiter = null
      waiter?.reject(this.refused)
    }
  }

  lease(max: number, signal: AbortSignal): Promise<LeasedRecord[]> {
    if (this.endedBy !== null) return Promise.reject(this.endedBy)
    if (this.closed) return Promise.reject(sluiceError(ErrorCode.Closed, `consumer of ${this.subscription} is closed`))
    if (this.buffer.length > 0) return Promise.resolve(this.take(max))
    if (signal.aborted) return Promise.resolve([])
    // Not open on the broker since a refused reopen: try again now (while disconnected, the next resume does).
    if (this.refused !== null && this.connection.connected) return this.open().then(() => this.lease(max, signal))
    const want = max - this.outstanding
    if (want > 0) {
      this.outstanding += want
      this.connection.credit(this.id, want)
    }
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        if (this.waiter?.resolve === finish) this.waiter = null
        resolve([])
      }
      const finish = (records: LeasedRecord[]): void => {
        signal.removeEventListener('abort', onAbort)
        resolve(records)
      }
      const fail = (err: SluiceError): void => {
        signal.removeEventListener('abort', onAbort)
        reject(err)
      }
      this.waiter = { max, resolve: finish, reject: fail }
      signal.addEventListener('abort', onAbort, { once: true })
    })
  }

  private take(max: number): LeasedRecord[] {
    const records = this.buffer.splice(0, max)
    for (const r of records) this.handedOut.set(keyOf(r), r)
    return records
  }

  /** Deliveries pushed by the broker. */
  deliver(wire: unknown[]): void {
    const records = wire.map(decodeLeasedRecord)
    this.outstanding = Math.max(0, this.outstanding - records.length)
    // Closing: CLOSE_CONSUMER gives back whatever was still on its way.
    if (this.closed) return
    for (const r of records) this.buffer.push(r)
    const waiter = this.waiter
    if (waiter !== null) {
      this.waiter = null
      waiter.resolve(this.take(waiter.max))
    }
  }

  leaseLost(wire: unknown[]): void {
    for (const ref of wire.map(decodeRef)) {
      const key = keyOf(ref)
      this.buffer = this.buffer.filter((r) => keyOf(r) !== key)
      if (this.handedOut.get(key)?.attempt === ref.attempt) this.handedOut.delete(key)
      for (const listener of this.lostListeners) listener(ref)
    }
  }

  /** The connection dropped: every lease held through it is gone. */
  disconnected(): void {
    this.buffer = []
    this.outstanding = 0
    const lost = [...this.handedOut.values()]
    this.handedOut.clear()
    for (const ref of lost) for (const listener of this.lostListeners) listener(ref)
  }

  /**
   * Sends an ack, nack, extend or release for the refs still held through
   * this connection and answers false for the rest. `finishing` refs stop
   * being held as the request leaves: a redelivery of the same message can
   * arrive before the answer, and must not be mistaken for this lease.
   */
  private async settle(
    refs: readonly LeaseRef[],
    finishing: boolean,
    send: (held: LeaseRef[]) => Promise<unknown>,
  ): Promise<boolean[]> {
    const held = refs.filter((r) => this.handedOut.get(keyOf(r))?.attempt === r.attempt)
    if (held.length === 0) return refs.map(() => false)
    if (finishing) for (const r of held) this.handedOut.delete(keyOf(r))
    const results = (await send(held)) as boolean[] | null
    const byKey = new Map<number, boolean>()
    held.forEach((r, i) => byKey.set(keyOf(r), results?.[i] ?? true))
    return refs.map((r) => byKey.get(keyOf(r)) ?? false)
  }

  ack(refs: readonly LeaseRef[]): Promise<boolean[]> {
    return this.settle(refs, true, (held) =>
      this.connection.request(Op.Ack, { consumer: this.id, refs: held.map(encodeRef) }),
    )
  }

  nack(refs: readonly LeaseRef[], delayMs: number | null, reason: string): Promise<boolean[]> {
    return this.settle(refs, true, (held) =>
      this.connection.request(Op.Nack, { consumer: this.id, refs: held.map(encodeRef), delayMs, reason }),
    )
  }

  async commit(ref: LeaseRef, outputs: readonly TransactionOutput[], txId: string): Promise<CommitResult> {
    const key = keyOf(ref)
    const held = this.handedOut.get(key)
    if (held?.attempt !== ref.attempt) return { acked: false, receipts: [] }
    // Sent again after a reconnect if need be: the transaction id makes a repeat return the first outcome.
    const result = await this.connection.request(
      Op.Commit,
      {
        consumer: this.id,
        ref: encodeRef(ref),
        txId,
        outputs: outputs.map((o) => ({ topic: o.topic, records: o.records.map((r) => encodeAppendRecord(r)) })),
      },
      { retriable: true },
    )
    // Refused before anything happened (unknown output topic…): the lease is still held, and stays listed.
    if (this.handedOut.get(key) === held) this.handedOut.delete(key)
    return result as CommitResult
  }

  extend(refs: readonly LeaseRef[], ms: number): Promise<boolean[]> {
    return this.settle(refs, false, (held) =>
      this.connection.request(Op.Extend, { consumer: this.id, refs: held.map(encodeRef), ms }),
    )
  }

  async release(refs: readonly LeaseRef[]): Promise<void> {
    await this.settle(refs, true, (held) =>
      this.connection.request(Op.Release, { consumer: this.id, refs: held.map(encodeRef) }),
    )
  }

  onLeaseLost(listener: (ref: LeaseRef) => void): void {
    this.lostListeners.push(listener)
  }

  onClosed(listener: (reason: SluiceError) => void): void {
    this.closedListeners.push(listener)
  }

  /** The broker ended this consumer (CONSUMER_CLOSED): nothing more comes, and the owner is told. */
  ended(reason: SluiceError): void {
    if (this.closed || this.endedBy !== null) return
    this.endedBy = reason
    this.buffer = []
    this.handedOut.clear()
    this.forget(this)
    for (const listener of this.closedListeners) listener(reason)
    const waiter = this.waiter
    this.waiter = null
    waiter?.reject(reason)
  }

  /**
   * Leaves the subscription. CLOSE_CONSUMER names the leases handed to the
   * owner and not settled (`handed`, as DriverConsumer.close says); the
   * broker gives back the rest, including deliveries still on their way here.
   */
  async close(handed?: readonly LeaseRef[]): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.buffer = []
    this.waiter?.resolve([])
    this.waiter = null
    this.forget(this)
    if (!this.connection.connected || this.endedBy !== null) return
    try {
      await this.connection.request(Op.CloseConsumer, {
        consumer: this.id,
        ...(handed === undefined ? {} : { handed: handed.map(encodeRef) }),
      })
    } catch {
      // The broker closes a consumer whose connection ends anyway.
    }
  }
}
