import { ErrorCode, sluiceError } from '../../core/errors.ts'
import { EntryState } from './lease.ts'
import type { PartitionWindow } from './partition-window.ts'

/*
 * drop-oldest eviction, as one subscription's partition window sees it. The
 * topic picks messages no subscription holds, each subscription reserves
 * them, the dead letters are written, then every subscription completes (or,
 * if they could not be written, aborts) the eviction. A reserved message is
 * neither leased nor read into the window, and its chain waits behind it, so
 * nothing is delivered that is being evicted.
 */

/**
 * Whether the subscription holds a message: leased (a handler may be
 * running it, or its commit being written), being dead-lettered, or
 * reserved by an eviction. drop-oldest never evicts a held message.
 */
export function holds(window: PartitionWindow, offset: number): boolean {
  if (window.evicting.has(offset)) return true
  const state = window.entries.get(offset)?.state
  return state === EntryState.Leased || state === EntryState.Dying || state === EntryState.Evicting
}

/**
 * drop-oldest chose these messages (none held): reserves those this
 * subscription has not acknowledged, so that none is leased, and their
 * chains wait, while their dead letters are written. Returns the offsets
 * reserved.
 */
export function reserveEviction(window: PartitionWindow, offsets: readonly number[]): number[] {
  const reserved: number[] = []
  for (const offset of offsets) {
    if (window.state.acks.has(offset)) continue
    if (holds(window, offset)) {
      throw sluiceError(ErrorCode.Internal, `drop-oldest chose message ${window.index}/${offset}, which is held`)
    }
    reserved.push(offset)
    const entry = window.entries.get(offset)
    // Ready or waiting entries stay in their heaps: take and the timer pass over what is no longer in that state.
    if (entry !== undefined) entry.state = EntryState.Evicting
    else window.evicting.add(offset)
  }
  return reserved
}

/** The reserved messages' dead letters are stored: they leave the window acknowledged (in memory; the caller journals it). */
export function completeEviction(window: PartitionWindow, offsets: readonly number[]): void {
  for (const offset of offsets) {
    window.evicting.delete(offset)
    const entry = window.entries.get(offset)
    if (entry !== undefined) window.remove(entry)
    else window.state.attempts.delete(offset)
    window.state.acks.add(offset)
  }
}

/** The dead letters could not be stored: the reserved messages are offered again, where they were. */
export function abortEviction(window: PartitionWindow, offsets: readonly number[]): void {
  let reread = Infinity
  for (const offset of offsets) {
    if (window.evicting.delete(offset)) {
      // Passed over by reading while reserved: read again from there.
      reread = Math.min(reread, offset)
      continue
    }
    const entry = window.entries.get(offset)
    if (entry?.state !== EntryState.Evicting) continue
    entry.state = EntryState.Blocked
    if (window.heads(entry)) window.makeEligible(entry)
  }
  if (reread < window.cursor) window.cursor = reread
  window.fill()
}
