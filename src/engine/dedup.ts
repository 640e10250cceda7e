import type { Receipt } from '../core/types.ts'

/**
 * Recognises messages stored already, two ways:
 * - a retried append: per (topic, producer id), the receipts of the
 *   producer's most recent sequences (`perProducer` of them; a producer not
 *   heard from for `idleMs` is forgotten);
 * - a repeated message id chosen by the producer, within the topic's
 *   dedupWindowMs.
 * A repeat gets the first receipt, marked duplicate, instead of being stored
 * again; a repeat that arrives while the first is still being stored waits
 * for it.
 */

/** A receipt, or where it will come from while the append is in progress. */
export type Known = Receipt | { readonly pending: Promise<Receipt[]>; readonly index: number }

export function receiptOf(known: Known): Promise<Receipt> {
  return 'pending' in known ? known.pending.then((receipts) => receipts[known.index]!) : Promise.resolve(known)
}

interface Producer {
  readonly sequences: Map<number, Known>
  lastUsed: number
}

export class Dedup {
  private readonly producers = new Map<string, Map<string, Producer>>()
  /** topic -> id -> when it was stored; insertion order is time order, so expiry walks from the front. */
  private readonly ids = new Map<string, Map<string, { known: Known; at: number }>>()

  constructor(
    private readonly perProducer = 10_000,
    private readonly idleMs = 10 * 60_000,
  ) {}

  findSequence(topic: string, producerId: string, sequence: number): Known | undefined {
    return this.producers.get(topic)?.get(producerId)?.sequences.get(sequence)
  }

  rememberSequence(topic: string, producerId: string, sequence: number, known: Known, now: number): void {
    let producers = this.producers.get(topic)
    if (producers === undefined) {
      producers = new Map()
      this.producers.set(topic, producers)
    }
    let producer = producers.get(producerId)
    if (producer === undefined) {
      producer = { sequences: new Map(), lastUsed: now }
      producers.set(producerId, producer)
    }
    producer.lastUsed = now
    producer.sequences.set(sequence, known)
    if (producer.sequences.size > this.perProducer) producer.sequences.delete(producer.sequences.keys().next().value!)
  }

  forgetSequence(topic: string, producerId: string, sequence: number): void {
    this.producers.get(topic)?.get(producerId)?.sequences.delete(sequence)
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

  forgetId(topic: string, id: string): void {
    this.ids.get(topic)?.delete(id)
  }

  /** Replaces in-progress entries with their receipts once stored (so the batch's promise is not kept). */
  settle(
    topic: string,
    producerId: string | undefined,
    sequence: number | undefined,
    id: string | undefined,
    receipt: Receipt,
  ): void {
    if (producerId !== undefined && sequence !== undefined) {
      const sequences = this.producers.get(topic)?.get(producerId)?.sequences
      if (sequences?.has(sequence) === true) sequences.set(sequence, receipt)
    }
    if (id !== undefined) {
      const entry = this.ids.get(topic)?.get(id)
      if (entry !== undefined) entry.known = receipt
    }
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
