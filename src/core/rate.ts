/**
 * A rate as a moving average: events per second, exponentially weighted
 * over `windowMs` (after one window an old burst weighs 1/e). Counted in
 * 1-second buckets, so adding is cheap.
 */
export class MovingRate {
  private rate = 0
  private bucketStart: number
  private bucketCount = 0
  private primed = false

  constructor(
    now: number,
    readonly windowMs = 60_000,
  ) {
    this.bucketStart = now
  }

  add(count: number, now: number): void {
    this.roll(now)
    this.bucketCount += count
  }

  private roll(now: number): void {
    const elapsed = now - this.bucketStart
    if (elapsed < 1000) return
    const buckets = Math.floor(elapsed / 1000)
    const alpha = 1 - Math.exp(-1000 / this.windowMs)
    // The finished bucket, then empty ones for any seconds that passed without events.
    this.rate = this.primed ? this.rate + alpha * (this.bucketCount - this.rate) : this.bucketCount
    this.primed = true
    for (let i = 1; i < buckets && i < 1000; i++) this.rate *= 1 - alpha
    this.bucketCount = 0
    this.bucketStart += buckets * 1000
  }

  /** Events per second. */
  perSecond(now: number): number {
    this.roll(now)
    return this.primed ? this.rate : 0
  }
}
