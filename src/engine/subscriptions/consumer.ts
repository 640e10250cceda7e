import type { DriverConsumer } from '../../core/driver.ts'
import { asSluiceError, ErrorCode, sluiceError, type SluiceError } from '../../core/errors.ts'
import type { CommitResult, ConsumerConfig, LeasedRecord, LeaseRef, TransactionOutput } from '../../core/types.ts'
import type { Dispatcher } from './dispatcher.ts'
import { leaseKey, type Lease, type LeaseHolder } from './lease.ts'

/** One consumer of a subscription on the embedded engine. */
export class EngineConsumer implements DriverConsumer, LeaseHolder {
  readonly leases = new Map<number, Lease>()
  private readonly lostListeners: ((ref: LeaseRef) => void)[] = []
  private readonly closedListeners: ((reason: SluiceError) => void)[] = []
  private closed = false

  constructor(
    private readonly dispatcher: Dispatcher,
    readonly config: ConsumerConfig,
    private readonly committer: (
      holder: EngineConsumer,
      ref: LeaseRef,
      outputs: readonly TransactionOutput[],
      txId: string,
    ) => Promise<CommitResult>,
  ) {}

  checkOpen(): void {
    if (this.closed)
      throw sluiceError(ErrorCode.Closed, `this consumer of subscription ${this.dispatcher.name} is closed`)
  }

  lease(max: number, signal: AbortSignal): Promise<LeasedRecord[]> {
    return settle(() => this.dispatcher.lease(this, max, signal), this)
  }

  ack(refs: readonly LeaseRef[]): Promise<boolean[]> {
    return settle(() => this.dispatcher.ack(this, refs), this)
  }

  nack(refs: readonly LeaseRef[], delayMs: number | null, reason: string): Promise<boolean[]> {
    return settle(() => this.dispatcher.nack(this, refs, delayMs, reason), this)
  }

  commit(ref: LeaseRef, outputs: readonly TransactionOutput[], txId: string): Promise<CommitResult> {
    return settle(() => this.committer(this, ref, outputs, txId), this)
  }

  extend(refs: readonly LeaseRef[], ms: number): Promise<boolean[]> {
    return settle(() => this.dispatcher.extend(this, refs, ms), this)
  }

  release(refs: readonly LeaseRef[]): Promise<void> {
    return settle(() => this.dispatcher.release(this, refs), this)
  }

  onLeaseLost(listener: (ref: LeaseRef) => void): void {
    this.lostListeners.push(listener)
  }

  leaseLost(ref: LeaseRef): void {
    for (const listener of this.lostListeners) listener(ref)
  }

  /** Leaves the subscription (see DriverConsumer.close for what happens to the leases still held). */
  close(handed?: readonly LeaseRef[]): Promise<void> {
    if (this.closed) return Promise.resolve()
    this.closed = true
    this.dispatcher.removeHolder(
      this,
      'the consumer closed while holding the message',
      handed === undefined ? null : new Map(handed.map((ref) => [leaseKey(ref.partition, ref.offset), ref.attempt])),
    )
    return Promise.resolve()
  }

  onClosed(listener: (reason: SluiceError) => void): void {
    this.closedListeners.push(listener)
  }

  /** Cut off by the engine (topic or subscription deleted, engine closed). */
  kill(reason: SluiceError): void {
    if (this.closed) return
    this.closed = true
    for (const listener of this.closedListeners) listener(reason)
  }
}

/** Runs `fn` for an open consumer, turning a throw into a rejection (callers chain, never catch synchronously). */
function settle<T>(fn: () => T | Promise<T>, consumer: EngineConsumer): Promise<T> {
  try {
    consumer.checkOpen()
    return Promise.resolve(fn())
  } catch (err) {
    return Promise.reject(asSluiceError(err))
  }
}
