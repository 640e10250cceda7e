/**
 * Time, injectable. Everything in Sluice that waits on the calendar (leases,
 * backoff, delayed delivery, retention by age, rate windows) asks a `Clock`,
 * so tests advance a fake clock instead of sleeping.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number
  /**
   * Calls `fn` once `ms` from now; the returned function cancels it. A timer
   * does not keep the process alive, unless `keepAlive` (for waits a caller's
   * promise depends on, such as a publish waiting to retry).
   */
  setTimer(fn: () => void, ms: number, keepAlive?: boolean): () => void
}

/**
 * The longest wait `setTimeout` takes. Node arms a longer one for 1 ms instead
 * (with a TimeoutOverflowWarning), so a far deadline, such as a message
 * delayed by 30 days, would come round every millisecond.
 */
export const maxTimeoutMs = 2 ** 31 - 1

/**
 * A clock on `Date.now` and `setTimeout`. A wait longer than `maxTimerMs`
 * (never more than `maxTimeoutMs`) is armed in steps of at most that, each
 * step armed when the one before ends; the callback runs once, after the
 * whole wait. The steps count time as `setTimeout` does (monotonic), so a
 * change of the wall clock does not move the deadline.
 */
export function realClock(maxTimerMs = maxTimeoutMs): Clock {
  const stepMs = Math.min(Math.max(1, Math.floor(maxTimerMs)), maxTimeoutMs)
  return {
    now: () => Date.now(),
    setTimer(fn, ms, keepAlive = false) {
      let leftMs = Math.max(0, ms)
      let timer: NodeJS.Timeout
      const arm = (): void => {
        const waitMs = Math.min(leftMs, stepMs)
        leftMs -= waitMs
        timer = setTimeout(leftMs > 0 ? arm : fn, waitMs)
        if (!keepAlive) timer.unref()
      }
      arm()
      return () => clearTimeout(timer)
    },
  }
}

/** The real clock. */
export const systemClock: Clock = realClock()

/** A clock that moves only when told to; for tests. */
export class FakeClock implements Clock {
  private current: number
  private timers: { at: number; seq: number; fn: () => void }[] = []
  private seq = 0

  constructor(startMs = Date.UTC(2026, 0, 1)) {
    this.current = startMs
  }

  now(): number {
    return this.current
  }

  setTimer(fn: () => void, ms: number): () => void {
    const timer = { at: this.current + Math.max(0, ms), seq: this.seq++, fn }
    this.timers.push(timer)
    return () => {
      this.timers = this.timers.filter((t) => t !== timer)
    }
  }

  /** Moves time forward by `ms`, firing due timers in time order. */
  advance(ms: number): void {
    const target = this.current + ms
    for (;;) {
      let next: (typeof this.timers)[number] | undefined
      for (const t of this.timers) {
        if (t.at <= target && (next === undefined || t.at < next.at || (t.at === next.at && t.seq < next.seq))) next = t
      }
      if (next === undefined) break
      this.timers = this.timers.filter((t) => t !== next)
      this.current = Math.max(this.current, next.at)
      next.fn()
    }
    this.current = target
  }

  /** How many timers are waiting. */
  get pendingTimers(): number {
    return this.timers.length
  }
}
