import { asSluiceError, type SluiceError } from '../../core/errors.ts'
import type { LeasedRecord } from '../../core/types.ts'
import type { Entry, LeaseHolder } from './lease.ts'

/** Where lease calls are served from. */
export interface LeaseSource {
  /** Grants up to `max` ready entries to `holder` (none: the call waits). */
  take(holder: LeaseHolder, max: number): Entry[]
  /** Hands granted entries out as records. */
  deliver(holder: LeaseHolder, entries: Entry[]): Promise<LeasedRecord[]>
  /** Nothing is ready: read ahead, if there is room. */
  readAhead(): void
}

interface Waiter {
  readonly holder: LeaseHolder
  readonly max: number
  readonly resolve: (records: LeasedRecord[]) => void
  readonly reject: (err: unknown) => void
  readonly detach: () => void
}

/**
 * The lease calls of one subscription: served at once from what is ready,
 * or else queued and served in the order they came. A wake is queued once
 * per microtask, so that entries made ready together are served in one
 * pass. A failed read from the log fails the first call, waiting or next.
 */
export class LeaseCalls {
  private waiters: Waiter[] = []
  private wakeQueued = false
  private readError: unknown = null

  constructor(private readonly source: LeaseSource) {}

  /** Leases up to `max` messages to `holder`, waiting until there is one (or the signal aborts: then none). */
  lease(holder: LeaseHolder, max: number, signal: AbortSignal): Promise<LeasedRecord[]> {
    if (this.readError !== null) {
      const err = asSluiceError(this.readError)
      this.readError = null
      return Promise.reject(err)
    }
    const taken = this.source.take(holder, max)
    if (taken.length > 0 || signal.aborted) return this.source.deliver(holder, taken)
    this.source.readAhead()
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const at = this.waiters.indexOf(waiter)
        if (at >= 0) this.waiters.splice(at, 1)
        resolve([])
      }
      const waiter: Waiter = {
        holder,
        max,
        resolve,
        reject,
        detach: () => signal.removeEventListener('abort', onAbort),
      }
      signal.addEventListener('abort', onAbort, { once: true })
      this.waiters.push(waiter)
    })
  }

  /** Entries became ready: waiting calls take them (in a microtask). */
  wake(): void {
    if (this.wakeQueued) return
    this.wakeQueued = true
    queueMicrotask(() => {
      this.wakeQueued = false
      while (this.waiters.length > 0) {
        const waiter = this.waiters[0]!
        if (this.readError !== null) {
          this.waiters.shift()
          waiter.detach()
          waiter.reject(asSluiceError(this.readError))
          this.readError = null
          continue
        }
        const taken = this.source.take(waiter.holder, waiter.max)
        if (taken.length === 0) break
        this.waiters.shift()
        waiter.detach()
        this.source.deliver(waiter.holder, taken).then(waiter.resolve, waiter.reject)
      }
    })
  }

  /** A read from the log failed: reported to the first lease call, waiting or next. */
  readFailed(err: unknown): void {
    this.readError = err
    this.wake()
  }

  /** The consumer left: its waiting calls end with nothing. */
  leave(holder: LeaseHolder): void {
    for (const waiter of this.waiters.filter((w) => w.holder === holder)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1)
      waiter.detach()
      waiter.resolve([])
    }
  }

  /** The subscription stopped: every waiting call fails with `err`. */
  close(err: SluiceError): void {
    for (const waiter of this.waiters) {
      waiter.detach()
      waiter.reject(err)
    }
    this.waiters = []
  }
}
