import type { DeliveryGuarantee, Ordering } from '../../core/types.ts'
import { AckSet } from './ack-set.ts'
import type { StateOp } from './state-journal.ts'

/**
 * What survives a restart of one subscription: its ordering and delivery,
 * and per partition the acknowledged offsets and the delivery counts of
 * messages handed out but not yet acknowledged.
 */
export interface PartitionState {
  readonly acks: AckSet
  /** offset -> deliveries so far, for messages not yet acknowledged. */
  readonly attempts: Map<number, number>
}

export interface SubscriptionState {
  readonly topic: string
  readonly name: string
  ordering: Ordering
  delivery: DeliveryGuarantee
  readonly partitions: PartitionState[]
}

export function newSubscriptionState(
  topic: string,
  name: string,
  ordering: Ordering,
  delivery: DeliveryGuarantee,
  floors: readonly number[],
): SubscriptionState {
  return {
    topic,
    name,
    ordering,
    delivery,
    partitions: floors.map((floor) => ({ acks: new AckSet(floor), attempts: new Map<number, number>() })),
  }
}

/** Applies acknowledged ranges (flat [start, end, start, end, …]) to a partition's state. */
export function applyAckRanges(state: PartitionState, ranges: readonly number[]): void {
  for (let i = 0; i + 1 < ranges.length; i += 2) state.acks.addRange(ranges[i]!, ranges[i + 1]!)
  for (const offset of state.attempts.keys()) if (state.acks.has(offset)) state.attempts.delete(offset)
}

/** The operations that recreate a subscription's state (for snapshots). */
export function stateAsOps(state: SubscriptionState): StateOp[] {
  const ops: StateOp[] = [
    {
      t: 'create',
      topic: state.topic,
      sub: state.name,
      ordering: state.ordering,
      delivery: state.delivery,
      floors: state.partitions.map((p) => p.acks.floor),
    },
  ]
  state.partitions.forEach((p, partition) => {
    const ranges = p.acks.ranges().flat()
    if (ranges.length > 0) ops.push({ t: 'ack', topic: state.topic, sub: state.name, p: partition, r: ranges })
    if (p.attempts.size > 0) {
      ops.push({
        t: 'try',
        topic: state.topic,
        sub: state.name,
        p: partition,
        o: [...p.attempts.keys()],
        n: [...p.attempts.values()],
      })
    }
  })
  return ops
}

/** Compresses offsets into flat ranges [start, end, …]. */
export function offsetsToRanges(offsets: readonly number[]): number[] {
  const sorted = [...offsets].sort((a, b) => a - b)
  const ranges: number[] = []
  for (const o of sorted) {
    const last = ranges.length - 1
    if (last > 0 && ranges[last] === o) ranges[last] = o + 1
    else if (last > 0 && ranges[last]! > o) continue
    else ranges.push(o, o + 1)
  }
  return ranges
}
