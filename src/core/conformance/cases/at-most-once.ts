import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ConformanceTarget } from '../target.ts'
import { eventually, publishMany, requires, turns, uniqueName } from '../helpers.ts'

export function atMostOnceCases(target: ConformanceTarget): void {
  test('at-most-once never redelivers, even when the handler throws', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('amo')
    await sluice.createTopic(topic, { partitions: 2 })
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 200 }, (_, i) => ({ data: i, key: `k${i % 10}` })),
    )
    const seen = new Map<number, number>()
    const subscribe = () =>
      sluice.subscribe<number>(
        topic,
        's',
        (m) => {
          seen.set(m.data, (seen.get(m.data) ?? 0) + 1)
          assert.equal(m.attempt, 1)
          if (m.data % 3 === 0) throw new Error('failing does not bring it back')
        },
        { delivery: 'at-most-once', concurrency: 8, backoff: { initialMs: 10, maxMs: 10 } },
      )
    if (!(await requires(sluice, [['deliveries', 'at-most-once']], subscribe))) return
    await subscribe()
    await eventually('every message handled', () => seen.size === 200)
    await instance.advance(60_000, 1000)
    await turns(50)
    for (const [value, count] of seen) assert.equal(count, 1, `message ${value} handled ${count} times`)
    const stats = await sluice.stats(topic)
    assert.equal(stats.subscriptions[0]!.depth, 0)
    assert.equal(stats.subscriptions[0]!.redeliveries, 0)
  })
}
