import type { Receipt } from '../core/types.ts'

/**
 * Recognises messages stored already, two ways:
 * - a retried append: per (topic, producer id), the receipts of the
 *   producer's most recent sequences, kept as ranges (one per append, since
 *   a producer numbers the messages of one append consecutively), at most
 *   `perProducer` sequences; a producer not heard from for `idleMs` is forgotten;
 * - a repeated message id chosen by the producer, within the topic's
 *   dedupWindowMs.
 * A repeat gets the first receipt, marked duplicate, instead of being stored
 * again; a repeat that arrives while the first is still being stored waits for it.
 */

/** A receipt, or where it will come from while the append is in progress. */
export type Known = Receipt | { readonly pending: Promise<Receipt[]>; readonly index: number }

export function receiptOf(known: Known): Promise<Receipt> {
  return 'pending' in known ? known.pending.then((receipts) => receipts[known.index]!) : Promise.resolve(known)
}

/** The sequences [first, first + count) of one append. */
interface SequenceRange {
  readonly first: number
  readonly count: number
  receipts: readonly Receipt[] | null
  readonly pending: Promise<Receipt[]> | null
  /** Where the range's receipts start within `pending`'s result. */
  readonly offset: number
}

interface Producer {
  /** Sorted by `first`; appends arrive in order, so new ranges go at the end. */
  ranges: SequenceRange[]
  sequences: number
  lastUsed: number
}

export class Dedup {
  private readonly producers = new Map<string, Map<string, Producer>>()
  /** topic -> id -> when it was stored; insertion order is time order, so expiry walks from the front. */
  private readonly ids = new Map<string, Map<string, { known: Known; at: number }>>()

  constructor(
    private readonly perProducer = 10_000,
    /** A producer not heard from for this long (ms) is forgotten. */
    readonly idleMs = 10 * 60_000,
  ) {}

  private producer(topic: string, producerId: string, now: number): Producer {
    let producers = this.producers.get(topic)
    if (producers === undefined) {
      producers = new Map()
      this.producers.set(topic, producers)
    }
    let producer = producers.get(producerId)
    if (producer === undefined) {
      producer = { ranges: [], sequences: 0, lastUsed: now }
      producers.set(producerId, producer)
    }
    // Records remembered at open come partition by partition, so not in time order.
    producer.lastUsed = Math.max(producer.lastUsed, now)
    return producer
  }

  /** Index of the range holding `sequence`, or of the first range after it when `after`. */
  private static search(ranges: readonly SequenceRange[], sequence: number): number {
    let lo = 0
    let hi = ranges.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      const r = ranges[mid]!
      if (sequence < r.first) hi = mid - 1
      else if (sequence >= r.first + r.count) lo = mid + 1
      else return mid
    }
    return -1 - lo
  }

  findSequence(topic: string, producerId: string, sequence: number): Known | undefined {
    const ranges = this.producers.get(topic)?.get(producerId)?.ranges
    if (ranges === undefined) return undefined
    const at = Dedup.search(ranges, sequence)
    if (at < 0) return undefined
    const range = ranges[at]!
    const index = sequence - range.first
    if (range.receipts !== null) return range.receipts[index]
    return { pending: range.pending!, index: range.offset + index }
  }

  /** Whether any of the sequences [first, first + count) is known. */
  overlaps(topic: string, producerId: string, first: number, count: number): boolean {
    const ranges = this.producers.get(topic)?.get(producerId)?.ranges
    if (ranges === undefined || ranges.length === 0) return false
    const last = ranges[ranges.length - 1]!
    if (first >= last.first + last.count) return false
    const at = Dedup.search(ranges, first)
    if (at >= 0) return true
    const next = ranges[-1 - at]
    return next !== undefined && next.first < first + count
  }

  /**
   * Remembers the sequences [first, first + count) of an append in progress;
   * `offset` is where they start in `pending`'s receipts.
   */
  rememberRange(
    topic: string,
    producerId: string,
    first: number,
    count: number,
    pending: Promise<Receipt[]>,
    offset: number,
    now: number,
  ): SequenceRange {
    const producer = this.producer(topic, producerId, now)
    const range: SequenceRange = { first, count, receipts: null, pending, offset }
    const ranges = producer.ranges
    if (ranges.length === 0 || first >= ranges[ranges.length - 1]!.first) ranges.push(range)
    else ranges.splice(-1 - Dedup.search(ranges, first), 0, range)
    producer.sequences += count
    while (producer.sequences > this.perProducer && ranges.length > 1) producer.sequences -= ranges.shift()!.count
    return range
  }

  /** A remembered range's append is stored: keep its receipts, not the batch's promise. */
  settleRange(range: SequenceRange, receipts: readonly Receipt[]): void {
    range.receipts = receipts.slice(range.offset, range.offset + range.count)
  }

  /** The append failed: a retry must store it. */
  forgetRange(topic: string, producerId: string, range: SequenceRange): void {
    const producer = this.producers.get(topic)?.get(producerId)
    if (producer === undefined) return
    const at = producer.ranges.indexOf(range)
    if (at >= 0) {
      producer.ranges.splice(at, 1)
      producer.sequences -= range.count
    }
  }

  /** The message stored with this id within the last `windowMs`. */
  findId(topic: string, id: string, now: number, windowMs: number): Known | undefined {
    const entry = this.ids.get(topic)?.get(id)
    if (entry === undefined || entry.at < now - windowMs) return undefined
    return entry.known
  }

  rememberId(topic: string, id: string, known: Known, at: number): void {
    let ids = this.ids.get(topic)
    if (ids === undefined) {
      ids = new Map()
      this.ids.set(topic, ids)
    }
    // Re-inserting keeps insertion order equal to time order.
    ids.delete(id)
    ids.set(id, { known, at })
  }

  settleId(topic: string, id: string, receipt: Receipt): void {
    const entry = this.ids.get(topic)?.get(id)
    if (entry !== undefined && 'pending' in entry.known) entry.known = receipt
  }

  forgetId(topic: string, id: string): void {
    this.ids.get(topic)?.delete(id)
  }

  dropTopic(topic: string): void {
    this.producers.delete(topic)
    this.ids.delete(topic)
  }

  /** Forgets idle producers and ids older than their topic's window. */
  expire(now: number, windowMsOf: (topic: string) => number): void {
    for (const producers of this.producers.values()) {
      for (const [id, producer] of producers) if (now - producer.lastUsed > this.idleMs) producers.delete(id)
    }
    for (const [topic, ids] of this.ids) {
      const oldest = now - windowMsOf(topic)
      for (const [id, entry] of ids) {
        if (entry.at >= oldest) break
        ids.delete(id)
      }
    }
  }
}
