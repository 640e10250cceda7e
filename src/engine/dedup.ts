import type { Receipt } from '../core/types.ts'

/**
 * Recognises a retried append: per (topic, producer id), the receipts of the
 * producer's most recent sequences. A retry of a sequence that is stored (or
 * still being stored) gets the first receipt, marked duplicate, instead of
 * being stored again. Bounded: `perProducer` sequences per producer, and a
 * producer not heard from for `idleMs` is forgotten.
 */
export class ProducerDedup {
  private readonly topics = new Map<
    string,
    Map<string, { receipts: Map<number, Promise<Receipt>>; lastUsed: number }>
  >()

  constructor(
    private readonly perProducer = 10_000,
    private readonly idleMs = 10 * 60_000,
  ) {}

  private window(topic: string, producerId: string, now: number): Map<number, Promise<Receipt>> {
    let producers = this.topics.get(topic)
    if (producers === undefined) {
      producers = new Map()
      this.topics.set(topic, producers)
    }
    let producer = producers.get(producerId)
    if (producer === undefined) {
      producer = { receipts: new Map(), lastUsed: now }
      producers.set(producerId, producer)
    }
    producer.lastUsed = now
    return producer.receipts
  }

  /** The receipt of an earlier append of this sequence (possibly still being stored). */
  find(topic: string, producerId: string, sequence: number): Promise<Receipt> | undefined {
    return this.topics.get(topic)?.get(producerId)?.receipts.get(sequence)
  }

  remember(topic: string, producerId: string, sequence: number, receipt: Promise<Receipt>, now: number): void {
    const receipts = this.window(topic, producerId, now)
    receipts.set(sequence, receipt)
    if (receipts.size > this.perProducer) receipts.delete(receipts.keys().next().value!)
  }

  /** The append failed: a retry must store it. */
  forget(topic: string, producerId: string, sequence: number): void {
    this.topics.get(topic)?.get(producerId)?.receipts.delete(sequence)
  }

  dropTopic(topic: string): void {
    this.topics.delete(topic)
  }

  /** Forgets producers idle for longer than idleMs. */
  expire(now: number): void {
    for (const producers of this.topics.values()) {
      for (const [id, producer] of producers) if (now - producer.lastUsed > this.idleMs) producers.delete(id)
    }
  }
}
