import type { TestContext } from 'node:test'
import { open } from '../../src/index.ts'
import { eventsTopic } from '../fixtures/events-topic.ts'

/**
 * Creates the fault workloads' topic with a subscription that never consumes,
 * so that nothing is trimmed as consumed: the test can then read back the
 * whole log and judge it (on Redis, what every subscription acknowledged is
 * deleted in steps).
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
