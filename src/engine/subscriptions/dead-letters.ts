import type { Clock } from '../../core/clock.ts'
import type { ConsumerConfig } from '../../core/types.ts'
import type { LogRecord } from '../log/record.ts'
import { EntryState, type Entry } from './lease.ts'

/** Appends a message that ran out of attempts to the dead-letter topic. */
export type WriteDeadLetter = (
  record: LogRecord,
  partition: number,
  attempts: number,
  reason: string,
  deadLetterTopic: string,
) => Promise<void>

/** What dead-lettering needs of the dispatcher. */
export interface DeadLetterHost {
  readonly clock: Clock
  readonly write: WriteDeadLetter
  /** The message is out: stored as a dead letter, or dropped (there is no dead-letter topic). */
  gone(entry: Entry, how: 'deadLettered' | 'dropped'): void
  /** The dead letter could not be stored: the message is offered again from its `availableAt`. */
  retry(entry: Entry): void
}

/**
 * Messages of one subscription that ran out of attempts, on their way to the
 * dead-letter topic. While one is written its entry is Dying: not leased,
 * not evicted, its chain waiting behind it. An entry that left the window
 * meanwhile (retention deleted it, say) is left alone when the write ends.
 */
export class DeadLetters {
  /** Dead letters being stored: the engine waits for them before it closes, so none is stored twice. */
  readonly pending = new Set<Promise<void>>()

  constructor(private readonly host: DeadLetterHost) {}

  add(entry: Entry, config: ConsumerConfig, reason: string): void {
    entry.state = EntryState.Dying
    if (config.deadLetter === null) {
      this.host.gone(entry, 'dropped')
      return
    }
    const dying = this.host.write(entry.record, entry.partition, entry.attempts, reason, config.deadLetter).then(
      () => {
        if (entry.state !== EntryState.Dying) return
        this.host.gone(entry, 'deadLettered')
      },
      () => {
        // The dead letter could not be stored (disk full?): keep the message and try again later.
        if (entry.state !== EntryState.Dying) return
        entry.availableAt = this.host.clock.now() + config.backoff.maxMs
        this.host.retry(entry)
      },
    )
    this.pending.add(dying)
    void dying.finally(() => this.pending.delete(dying))
  }
}
