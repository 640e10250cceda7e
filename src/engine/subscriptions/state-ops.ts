import type { StateOp } from './state-journal.ts'
import { offsetsToRanges } from './subscription-state.ts'

// The journal operations a dispatcher writes for its acknowledgements and delivery counts: one per partition
// for a batch of messages, not one per message.

/** The subscription an operation is about. */
export interface SubscriptionName {
  readonly topic: string
  readonly name: string
}

/** Per partition, messages handed out (`o`) and how many times each has been delivered (`n`). */
export type DeliveryCounts = Map<number, { o: number[]; n: number[] }>

/** Acknowledges offsets, per partition. */
export function ackOps(sub: SubscriptionName, offsets: ReadonlyMap<number, readonly number[]>): StateOp[] {
  return [...offsets].map(([p, list]) => ackRangesOp(sub, p, offsetsToRanges(list)))
}

/** Acknowledges flat ranges [start, end, …] of one partition. */
export function ackRangesOp(sub: SubscriptionName, partition: number, ranges: number[]): StateOp {
  return { t: 'ack', topic: sub.topic, sub: sub.name, p: partition, r: ranges }
}

/** Takes acknowledgements back (at-most-once messages given back unstarted). */
export function unackOps(sub: SubscriptionName, offsets: ReadonlyMap<number, number[]>): StateOp[] {
  return [...offsets].map(([p, o]) => ({ t: 'unack', topic: sub.topic, sub: sub.name, p, o }))
}

/** Records how many times messages have been delivered, per partition. */
export function tryOps(sub: SubscriptionName, tries: DeliveryCounts): StateOp[] {
  return [...tries].map(([p, t]) => ({ t: 'try', topic: sub.topic, sub: sub.name, p, o: t.o, n: t.n }))
}

/** Adds an offset to its partition's list. */
export function pushOffset(offsets: Map<number, number[]>, partition: number, offset: number): void {
  const list = offsets.get(partition)
  if (list === undefined) offsets.set(partition, [offset])
  else list.push(offset)
}

/** Adds a message's delivery count to its partition's. */
export function pushTry(tries: DeliveryCounts, partition: number, offset: number, attempts: number): void {
  let t = tries.get(partition)
  if (t === undefined) {
    t = { o: [], n: [] }
    tries.set(partition, t)
  }
  t.o.push(offset)
  t.n.push(attempts)
}
