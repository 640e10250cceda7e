import type { SluiceError } from '../../core/errors.ts'
import type { ConsumerConfig, LeasedRecord, LeaseRef } from '../../core/types.ts'
import type { LogRecord } from '../log/record.ts'

export const EntryState = {
  /** Behind another message of its chain. */
  Blocked: 'blocked',
  Ready: 'ready',
  /** Waiting for its backoff. */
  Waiting: 'waiting',
  Leased: 'leased',
  /** Being written to the dead-letter topic. */
  Dying: 'dying',
  /** Reserved by a drop-oldest eviction while its dead letter is written: not leased, and its chain waits. */
  Evicting: 'evicting',
  Done: 'done',
} as const
export type EntryState = (typeof EntryState)[keyof typeof EntryState]

/**
 * A message in a subscription's window, from when it is read until it is
 * done. It and its lease point at each other: a lease is live only while its
 * entry's `lease` is that lease, which is how a stale ref or timer item is told.
 */
export interface Entry {
  readonly partition: number
  readonly offset: number
  readonly record: LogRecord
  /** The chain it belongs to; null: unordered. */
  readonly chain: string | null
  attempts: number
  availableAt: number
  state: EntryState
  lease: Lease | null
  /** At-most-once: acknowledged when handed out; held only to keep the order until its handler ends. */
  preAcked: boolean
}

export interface Lease {
  readonly entry: Entry
  readonly consumer: LeaseHolder
  readonly attempt: number
  readonly grantedAt: number
  readonly config: ConsumerConfig
  deadline: number
  /**
   * A transaction acknowledging this message is being written: neither an
   * expiry nor the consumer leaving may offer the message again meanwhile, or
   * the redelivery would commit a second time. The commit's end settles it.
   */
  committing: boolean
}

/** What the dispatcher needs of a consumer. */
export interface LeaseHolder {
  readonly config: ConsumerConfig
  readonly leases: Map<number, Lease>
  leaseLost(ref: LeaseRef): void
  /** Cut off: the subscription, its topic or the engine is gone. */
  kill(reason: SluiceError): void
}

/**
 * A lease's key in a consumer's map: a number, not a string, because one is
 * made per delivery. Exact while offsets stay below 2^43 (8.8 trillion
 * messages in one partition).
 */
export function leaseKey(partition: number, offset: number): number {
  return offset * 1024 + partition
}

/** Leases a ready entry to `holder` for one more attempt; the entry and the holder's map both name the lease. */
export function grantLease(entry: Entry, holder: LeaseHolder, now: number): Lease {
  entry.attempts++
  entry.state = EntryState.Leased
  const lease: Lease = {
    entry,
    consumer: holder,
    attempt: entry.attempts,
    grantedAt: now,
    config: holder.config,
    deadline: now + holder.config.ackTimeoutMs,
    committing: false,
  }
  entry.lease = lease
  holder.leases.set(leaseKey(entry.partition, entry.offset), lease)
  return lease
}

/** The leases all `holders` hold. */
export function leasesHeld(holders: Iterable<LeaseHolder>): number {
  let n = 0
  for (const holder of holders) n += holder.leases.size
  return n
}

/** What a consumer is handed for a leased entry. */
export function toLeased(entry: Entry): LeasedRecord {
  const r = entry.record
  return {
    id: r.id,
    key: r.key,
    headers: r.headers,
    payload: r.payload,
    format: r.format,
    deliverAt: r.deliverAt,
    partition: entry.partition,
    offset: r.offset,
    timestamp: r.timestamp,
    attempt: entry.attempts,
  }
}
