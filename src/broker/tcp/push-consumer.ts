import type { DriverConsumer } from '../../core/driver.ts'
import { encodeLeasedRecord } from '../../protocol/wire.ts'

/**
 * A consumer on the broker: leases from the engine only as many messages as
 * the client has granted credit for, and pushes them as DELIVER frames.
 * No credit, no push: a client that stops granting gets nothing more.
 */
export class PushConsumer {
  private credit = 0
  private readonly abort = new AbortController()
  private wakeUp: (() => void) | null = null
  private closed = false
  /** Records pushed and not yet acknowledged, nacked or released (for the connection's accounting). */
  readonly done: Promise<void>

  constructor(
    readonly id: number,
    readonly consumer: DriverConsumer,
    private readonly deliver: (id: number, records: unknown[]) => void,
    private readonly maxBatch = 512,
  ) {
    this.done = this.run()
  }

  /** More deliveries the client may receive (capped so a bogus grant cannot run away). */
  grant(n: number): void {
    this.credit = Math.min(this.credit + n, 1_000_000)
    const wake = this.wakeUp
    this.wakeUp = null
    wake?.()
  }

  private async run(): Promise<void> {
    while (!this.closed) {
      if (this.credit <= 0) {
        await new Promise<void>((resolve) => (this.wakeUp = resolve))
        continue
      }
      let records
      try {
        records = await this.consumer.lease(Math.min(this.credit, this.maxBatch), this.abort.signal)
      } catch {
        // The subscription or its topic is gone: the client learns it from its next request.
        return
      }
      if (records.length === 0) continue
      this.credit -= records.length
      this.deliver(this.id, records.map(encodeLeasedRecord))
    }
  }

  /** Stops pushing; the engine consumer closes (held leases fail and are redelivered). */
  async close(): Promise<void> {
    this.pause()
    await this.done
    await this.consumer.close()
  }

  /** Stops pushing without closing the engine consumer (graceful broker shutdown lets acks land first). */
  pause(): void {
    if (this.closed) return
    this.closed = true
    this.abort.abort()
    this.wakeUp?.()
  }
}
