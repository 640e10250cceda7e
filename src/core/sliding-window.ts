/**
 * A sliding-window rate limit: at most `perSecond + burst` events in any
 * window of 1,000 ms. Exact, not estimated: accepted events are kept as
 * (millisecond, count) entries, one per millisecond that saw any, so memory
 * stays at most one entry per millisecond of the window whatever the rate,
 * and the common check (room now) costs O(1) amortised.
 */
export class SlidingWindow {
  /** Entry times and counts, a ring of `head..head+length`. */
  private times: Float64Array
  private counts: Float64Array
  private head = 0
  private length = 0
  /** Events in the entries kept. */
  private total = 0
  readonly capacity: number

  constructor(
    readonly perSecond: number,
    readonly burst: number,
    private readonly windowMs = 1000,
  ) {
    this.capacity = perSecond + burst
    this.times = new Float64Array(16)
    this.counts = new Float64Array(16)
  }

  /** Forgets entries that have left the window at `now`. */
  private expire(now: number): void {
    while (this.length > 0 && this.times[this.head]! + this.windowMs <= now) {
      this.total -= this.counts[this.head]!
      this.head = (this.head + 1) % this.times.length
      this.length--
    }
  }

  /**
   * When `count` more events may happen (ms since the epoch; `now` or
   * earlier means at once). More than the capacity at once never fits.
   */
  availableAt(count: number, now: number): number {
    if (count > this.capacity) return Infinity
    this.expire(now)
    let over = this.total + count - this.capacity
    if (over <= 0) return now
    // Enough of the oldest entries must leave the window: the last of them decides when.
    for (let i = 0; i < this.length; i++) {
      const at = (this.head + i) % this.times.length
      over -= this.counts[at]!
      if (over <= 0) return Math.max(now, this.times[at]! + this.windowMs)
    }
    return Infinity
  }

  /** Records `count` events at `now` (the caller checked availableAt). */
  take(count: number, now: number): void {
    this.total += count
    if (this.length > 0) {
      const last = (this.head + this.length - 1) % this.times.length
      if (this.times[last] === now) {
        this.counts[last] = this.counts[last]! + count
        return
      }
    }
    if (this.length === this.times.length) this.grow()
    const at = (this.head + this.length) % this.times.length
    this.times[at] = now
    this.counts[at] = count
    this.length++
  }

  /** Gives back `count` events taken at `at` (the publish that took them was not stored after all). */
  give(count: number, at: number): void {
    for (let i = this.length - 1; i >= 0; i--) {
      const slot = (this.head + i) % this.times.length
      const time = this.times[slot]!
      if (time < at) return
      if (time === at) {
        const back = Math.min(count, this.counts[slot]!)
        this.counts[slot] = this.counts[slot]! - back
        this.total -= back
        return
      }
    }
  }

  private grow(): void {
    const times = new Float64Array(this.times.length * 2)
    const counts = new Float64Array(this.times.length * 2)
    for (let i = 0; i < this.length; i++) {
      const at = (this.head + i) % this.times.length
      times[i] = this.times[at]!
      counts[i] = this.counts[at]!
    }
    this.times = times
    this.counts = counts
    this.head = 0
  }
}
