import { deadLetterHeaders } from '../../core/dead-letters.ts'
import type { TopicInfo } from '../../core/types.ts'
import { num, recordOf, text } from './entries.ts'
import { Script } from './link.ts'
import { claimDeadScript, deadDoneScript } from './lua/subscription.ts'
import type { RedisDriver } from './redis-driver.ts'

const scripts = {
  claimDead: new Script('claim-dead', claimDeadScript),
  deadDone: new Script('dead-done', deadDoneScript),
}

/** How long a dead letter's writer holds it before another consumer may write it instead. */
const deadClaimMs = 30_000

export interface DeadLetterSource {
  readonly driver: RedisDriver
  readonly source: TopicInfo
  readonly subscription: string
  /** The dead-letter topic; null: out of attempts means dropped (counted). */
  readonly deadLetter: string | null
  /** The subscription's keys on this partition, and its generation there. */
  readonly keys: readonly string[]
  readonly gen: string
  readonly partition: number
}

/**
 * Writes the dead-letter copies of a partition's messages that ran out of
 * attempts: claimed first (so one consumer writes each), then copied with
 * core's dead-letter headers into the dead-letter topic (another slot, so not
 * in the same script), then marked done. A writer that dies between the copy
 * and the mark leaves the claim to run out: the copy is written again (a dead
 * letter may be stored twice, never lost).
 */
export async function writeDeadLetters(from: DeadLetterSource): Promise<void> {
  const { driver, partition, deadLetter } = from
  for (;;) {
    const reply = await driver.link.run(scripts.claimDead, from.keys, [from.gen, driver.clock.now(), deadClaimMs, 100])
    if (!Array.isArray(reply) || text(reply[0]) !== 'ok' || reply.length <= 1) return
    const done: string[] = []
    for (let i = 1; i + 3 < reply.length + 1; i += 4) {
      const offset = num(reply[i])
      const fields = reply[i + 3]
      if (deadLetter !== null && Array.isArray(fields) && fields.length > 0) {
        const record = recordOf(fields, partition, offset)
        await driver.ensureTopic(deadLetter, from.source)
        const headers = deadLetterHeaders(record.headers, {
          topic: from.source.name,
          partition,
          offset,
          timestamp: record.timestamp,
          subscription: from.subscription,
          attempts: num(reply[i + 1]),
          error: text(reply[i + 2]),
          deadLetteredAt: driver.clock.now(),
        })
        await driver.append(deadLetter, [
          { id: record.id, key: record.key, headers, payload: record.payload, format: record.format, deliverAt: 0 },
        ])
      }
      done.push(String(offset))
    }
    await driver.link.run(scripts.deadDone, from.keys, [
      from.gen,
      driver.clock.now(),
      deadLetter === null ? 'dropped' : 'deadLettered',
      from.subscription,
      ...done,
    ])
  }
}
