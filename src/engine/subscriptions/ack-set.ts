/**
 * The acknowledged offsets of one (subscription, partition): a floor below
 * which everything is acknowledged, plus sorted, disjoint ranges
 * [start, end) of acknowledged offsets above it. Consumers acknowledge out
 * of order (keys run in parallel), so the ranges are the gaps' complement;
 * a long-delayed message keeps the floor low while everything after it is
 * one range.
 */
export class AckSet {
  private starts: number[] = []
  private ends: number[] = []

  constructor(private lowest: number = 0) {}

  /** Every offset below this is acknowledged; it is the first one that is not. */
  get floor(): number {
    return this.lowest
  }

  /** The ranges above the floor, for snapshots. */
  ranges(): [number, number][] {
    return this.starts.map((start, i) => [start, this.ends[i]!])
  }

  /** Index of the last range starting at or before `offset`, or -1. */
  private find(offset: number): number {
    let lo = 0
    let hi = this.starts.length - 1
    let found = -1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      if (this.starts[mid]! <= offset) {
        found = mid
        lo = mid + 1
      } else {
        hi = mid - 1
      }
    }
    return found
  }

  has(offset: number): boolean {
    if (offset < this.lowest) return true
    const i = this.find(offset)
    return i >= 0 && offset < this.ends[i]!
  }

  /** Marks [start, end) acknowledged; returns how many of them were not already. */
  addRange(start: number, end: number): number {
    let added = 0
    for (let o = start; ;) {
      // Walk gap by gap: add each unacknowledged stretch in one step. The floor may have jumped.
      o = Math.max(o, this.lowest)
      if (o >= end) break
      const i = this.find(o)
      if (i >= 0 && o < this.ends[i]!) {
        o = this.ends[i]!
        continue
      }
      const nextStart = i + 1 < this.starts.length ? this.starts[i + 1]! : Infinity
      const stop = Math.min(end, nextStart)
      this.insert(o, stop)
      added += stop - o
      o = stop
    }
    return added
  }

  /** Marks one offset acknowledged; false when it already was. */
  add(offset: number): boolean {
    return this.addRange(offset, offset + 1) === 1
  }

  private insert(start: number, end: number): void {
    if (start === this.lowest) {
      this.lowest = end
      // Absorb ranges that now touch the floor.
      while (this.starts.length > 0 && this.starts[0]! <= this.lowest) {
        this.lowest = Math.max(this.lowest, this.ends[0]!)
        this.starts.shift()
        this.ends.shift()
      }
      return
    }
    const i = this.find(start)
    const mergeLeft = i >= 0 && this.ends[i] === start
    const mergeRight = i + 1 < this.starts.length && this.starts[i + 1] === end
    if (mergeLeft && mergeRight) {
      this.ends[i] = this.ends[i + 1]!
      this.starts.splice(i + 1, 1)
      this.ends.splice(i + 1, 1)
    } else if (mergeLeft) {
      this.ends[i] = end
    } else if (mergeRight) {
      this.starts[i + 1] = start
    } else {
      this.starts.splice(i + 1, 0, start)
      this.ends.splice(i + 1, 0, end)
    }
  }

  /**
   * Takes an acknowledgement back (an at-most-once message given back before
   * any handler saw it); false when it was not acknowledged. Below the floor,
   * the floor drops to it and the rest of what was below becomes a range.
   */
  remove(offset: number): boolean {
    if (offset < this.lowest) {
      if (offset + 1 < this.lowest) {
        this.starts.unshift(offset + 1)
        this.ends.unshift(this.lowest)
      }
      this.lowest = offset
      return true
    }
    const i = this.find(offset)
    if (i < 0 || offset >= this.ends[i]!) return false
    const start = this.starts[i]!
    const end = this.ends[i]!
    if (start === offset && end === offset + 1) {
      this.starts.splice(i, 1)
      this.ends.splice(i, 1)
    } else if (start === offset) {
      this.starts[i] = offset + 1
    } else if (end === offset + 1) {
      this.ends[i] = offset
    } else {
      this.ends[i] = offset
      this.starts.splice(i + 1, 0, offset + 1)
      this.ends.splice(i + 1, 0, end)
    }
    return true
  }

  /** The first offset at or after `from` that is not acknowledged. */
  nextUnacked(from: number): number {
    const o = Math.max(from, this.lowest)
    const i = this.find(o)
    return i >= 0 && o < this.ends[i]! ? this.ends[i]! : o
  }

  /** Acknowledged offsets in [from, to). */
  countIn(from: number, to: number): number {
    if (to <= from) return 0
    let count = Math.max(0, Math.min(to, this.lowest) - from)
    for (let i = 0; i < this.starts.length; i++) {
      const s = Math.max(this.starts[i]!, from)
      const e = Math.min(this.ends[i]!, to)
      if (e > s) count += e - s
    }
    return count
  }

  /**
   * Moves the floor up to `offset` (retention deleted what is below it);
   * returns how many offsets in between had not been acknowledged.
   */
  advanceTo(offset: number): number {
    if (offset <= this.lowest) return 0
    const unacked = offset - this.lowest - this.countIn(this.lowest, offset)
    this.addRange(this.lowest, offset)
    return unacked
  }
}
