import { PayloadFormat } from './codec.ts'
import type { AppendRecord, Receipt } from './types.ts'

type Append = (topic: string, records: AppendRecord[]) => Promise<Receipt[]>

/** One caller's records (one `publish()`, or a `publishBatch`) and where its receipts go. */
interface Entry {
  readonly records: AppendRecord[]
  readonly resolve: (receipts: Receipt[]) => void
  readonly reject: (err: unknown) => void
}

/**
 * Publishes to one topic made in the same synchronous run (a loop of
 * `publish()` calls, a `Promise.all` of them) reach the runtime as one
 * append, so 64 publishes in flight cost about what one `publishBatch(64)`
 * costs: one append through every layer, one log write, one frame to a
 * broker, one script on Redis. The append is made in a microtask, so a lone
 * publish waits for nothing.
 *
 * Each caller keeps the outcome it would have had alone: if the gathered
 * append fails as a whole (one message too large, a bound reached, the topic
 * missing), each caller's records are appended again on their own, with
 * their own retries, and get their own receipts or error. The records keep
 * their producer sequences, so any stored before the failure (an answer
 * lost) are recognised, not stored twice. Order is kept: an append that does
 * not wait in here (one with its own deadline) first sends what waits.
 */
export class PublishGather {
  private readonly waiting = new Map<string, Entry[]>()

  constructor(
    /** The gathered append: straight to the runtime, no retries (a failure is retried caller by caller). */
    private readonly appendAll: Append,
    /** One caller's append, with the publish retry policy. */
    private readonly appendOne: Append,
  ) {}

  add(topic: string, records: readonly AppendRecord[]): Promise<Receipt[]> {
    let entries = this.waiting.get(topic)
    if (entries === undefined) {
      const fresh: Entry[] = []
      entries = fresh
      this.waiting.set(topic, fresh)
      queueMicrotask(() => this.flush(topic, fresh))
    }
    // The append happens after the caller has returned, and it may reuse its buffers: bytes it gave (or its codec
    // made) are copied now. JSON was encoded into a fresh buffer of ours, so the hot default path copies nothing.
    const copies = records.map((record) =>
      record.format === PayloadFormat.Json ? record : { ...record, payload: Buffer.from(record.payload) },
    )
    const list = entries
    return new Promise((resolve, reject) => list.push({ records: copies, resolve, reject }))
  }

  /** Sends what waits for `topic` now (before an append that goes its own way). */
  flushTopic(topic: string): void {
    const entries = this.waiting.get(topic)
    if (entries !== undefined) this.flush(topic, entries)
  }

  flushAll(): void {
    for (const [topic, entries] of [...this.waiting]) this.flush(topic, entries)
  }

  private flush(topic: string, entries: Entry[]): void {
    if (this.waiting.get(topic) !== entries) return // sent already
    this.waiting.delete(topic)
    const alone = (entry: Entry): void => {
      this.appendOne(topic, entry.records).then(entry.resolve, entry.reject)
    }
    if (entries.length === 1) return alone(entries[0]!)
    this.appendAll(
      topic,
      entries.flatMap((entry) => entry.records),
    ).then(
      (receipts) => {
        let at = 0
        for (const entry of entries) {
          entry.resolve(receipts.slice(at, at + entry.records.length))
          at += entry.records.length
        }
      },
      () => entries.forEach(alone),
    )
  }
}
