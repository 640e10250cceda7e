import type { TestContext } from 'node:test'
import { open } from '../../src/index.ts'
import { eventsTopic } from '../fixtures/events-topic.ts'
import type { Child } from '../helpers/child.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { History } from './history.ts'

/**
 * Reading the fault workloads of the 'events' topic (the broker-producer and
 * broker-consumer fixtures): what the producer says it tried and had
 * acknowledged, what the consumers were handed, what the log holds.
 */

/**
 * Creates the topic with a subscription that never consumes, so that nothing
 * is trimmed as consumed: the test can then read back the whole log and judge
 * it (on Redis, what every subscription acknowledged is deleted in steps).
 */
export async function keepTheLog(t: TestContext, url: string): Promise<void> {
  const sluice = await open({ url })
  try {
    await sluice.createTopic('events', eventsTopic)
    const keeper = await sluice.subscribe('events', 'keeper', { prefetch: 0 })
    await keeper.close()
  } finally {
    await sluice.close()
  }
  t.diagnostic("the 'keeper' subscription holds the whole log for the judgement")
}

/** The producer's lines as a history: "try", then "ack" with where it was stored. */
export function producerHistory(seed: number, producer: Child): History {
  const history = new History(seed)
  for (const line of producer.lines) {
    const [word, name, counter, a, b] = line.split(' ')
    if (word === 'try') history.attempt(name!, Number(counter), a)
    if (word === 'ack') history.ack(name!, Number(counter), { partition: Number(a), offset: Number(b) })
  }
  return history
}

/** The ids ("producer:counter") of every publish the producer had acknowledged, and how many failed. */
export function producerOutcome(producer: Child): { acked: Set<string>; failed: number } {
  const acked = new Set<string>()
  let failed = 0
  for (const line of producer.lines) {
    const [word, name, counter] = line.split(' ')
    if (word === 'ack') acked.add(`${name}:${counter}`)
    if (word === 'fail') failed++
  }
  return { acked, failed }
}

/** Waits until the consumers' "got" lines cover every acknowledged publish. */
export function everyAckedDelivered(
  acked: ReadonlySet<string>,
  lines: () => readonly string[],
  timeoutMs = 60_000,
): Promise<void> {
  return waitFor(
    'the consumer to receive every acknowledged publish',
    () => {
      const seen = new Set(
        lines()
          .filter((l) => l.startsWith('got '))
          .map((l) => l.split(' ')[1]!),
      )
      return [...acked].every((id) => seen.has(id))
    },
    timeoutMs,
  )
}

/** Reads every message the log holds into `into`; answers how many. */
export async function readWholeLog(t: TestContext, url: string, into: History, partitions = 3): Promise<number> {
  const reader = await open({ url })
  cleanup(t, () => reader.close())
  let count = 0
  for (let partition = 0; partition < partitions; partition++) {
    for (let from = 0; ;) {
      const batch = await reader.read<{ id: string }>('events', partition, from, 1000)
      if (batch.length === 0) break
      for (const m of batch) into.read(m.id, { partition, offset: m.offset })
      count += batch.length
      from = batch.at(-1)!.offset + 1
    }
  }
  return count
}
