import type { DriverConsumer } from '../../core/driver.ts'
import { ErrorCode, hasCode } from '../../core/errors.ts'
import type { LeaseRef } from '../../core/types.ts'
import { encodeLeasedRecord } from '../../protocol/wire.ts'

/**
 * A consumer on the broker: leases from the engine only as many messages as
 * the client has granted credit for, and pushes them as DELIVER frames.
 * No credit, no push: a client that stops granting gets nothing more.
 *
 * A frame carries at most `maxBatch` records and about `maxFrameBytes` of
 * payload (sized from the records sent so far). Several smaller frames
 * rather than one large one let the client start on the first while the
 * next is on its way. Deliveries wait while the connection's send buffer is
 * full (`sendRoom`): credit bounds how many messages a client holds, not how
 * fast it reads, so a run of large messages must not pile up in memory.
 */
export class PushConsumer {
  private credit = 0
  private readonly abort = new AbortController()
  private wakeUp: (() => void) | null = null
  private closed = false
  /** Lease calls failed in a row. */
  private failures = 0
  private resolvePaused!: () => void
  /** Resolves when pushing stops. */
  private readonly paused = new Promise<void>((resolve) => (this.resolvePaused = resolve))
  /**
   * Payload bytes per record in the last lease: how many to lease next so they fit a frame. Unknown at
   * first, so the first lease takes one record (a first lease of many large records could exceed the
   * connection's send buffer bound at once).
   */
  private recordBytes: number
  /** Records pushed and not yet acknowledged, nacked or released (for the connection's accounting). */
  readonly done: Promise<void>

  constructor(
    readonly id: number,
    readonly consumer: DriverConsumer,
    private readonly deliver: (id: number, records: unknown[]) => void,
    /** Null when the connection can take more deliveries now, else resolves when it can. */
    private readonly sendRoom: () => Promise<void> | null = () => null,
    private readonly maxBatch = 64,
    private readonly maxFrameBytes = 1024 * 1024,
  ) {
    this.recordBytes = maxFrameBytes
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
      const room = this.sendRoom()
      if (room !== null) {
        // Closing does not wait for a client that does not read.
        await Promise.race([room, this.paused])
        continue
      }
      let records
      const fit = Math.max(1, Math.floor(this.maxFrameBytes / this.recordBytes))
      try {
        records = await this.consumer.lease(Math.min(this.credit, this.maxBatch, fit), this.abort.signal)
        this.failures = 0
      } catch (err) {
        // The subscription or its topic is gone: the consumer's onClosed has told the client.
        if (hasCode(err, ErrorCode.Closed)) return
        // Anything else (a read error) may pass: try again, backing off to 5 s, as a local runner would.
        this.failures++
        await Promise.race([
          new Promise((resolve) => setTimeout(resolve, Math.min(5000, 50 * 2 ** this.failures)).unref()),
          this.paused,
        ])
        continue
      }
      if (records.length === 0) continue
      this.credit -= records.length
      // Split by bytes too: the size guess was made before these records were seen.
      let frame: unknown[] = []
      let frameBytes = 0
      let bytes = 0
      for (const record of records) {
        const size = record.payload.length
        bytes += size
        if (frame.length > 0 && frameBytes + size > this.maxFrameBytes) {
          this.deliver(this.id, frame)
          frame = []
          frameBytes = 0
        }
        frame.push(encodeLeasedRecord(record))
        frameBytes += size
      }
      this.deliver(this.id, frame)
      this.recordBytes = Math.max(64, Math.ceil(bytes / records.length))
      // Let the frames leave (the connection corks a tick's writes) before asking whether there is room for more.
      await new Promise<void>((resolve) => setImmediate(resolve))
    }
  }

  /**
   * Stops pushing; the engine consumer closes. `handed` (a client's clean
   * close): the leases that reached its handlers; everything else pushed,
   * even what is still on its way to the client, goes back unstarted.
   * Without it (the connection dropped), every lease held fails.
   */
  async close(handed?: readonly LeaseRef[]): Promise<void> {
    this.pause()
    await this.done
    await this.consumer.close(handed)
  }

  /** Whether it still pushes (not paused or closed). */
  get active(): boolean {
    return !this.closed
  }

  /** Stops pushing without closing the engine consumer (graceful broker shutdown lets acks land first). */
  pause(): void {
    if (this.closed) return
    this.closed = true
    this.abort.abort()
    this.wakeUp?.()
    this.resolvePaused()
  }
}
