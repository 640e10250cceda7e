import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ConformanceTarget } from '../target.ts'
import { eventually, publishMany, uniqueName } from '../helpers.ts'

/** Fan-out across subscriptions, work sharing within one. */
export function fanOutCases(target: ConformanceTarget): void {
  test('every subscription receives every message: two subscriptions each get all 10,000', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('fan')
    await sluice.createTopic(topic, { partitions: 4 })
    const n = 10_000
    const receipts = await publishMany(
      sluice,
      topic,
      Array.from({ length: n }, (_, i) => ({ data: i, key: `k${i % 97}` })),
    )
    const seen = { billing: new Map<string, number>(), shipping: new Map<string, number>() }
    for (const name of ['billing', 'shipping'] as const) {
      await sluice.subscribe(topic, name, (m) => void seen[name].set(m.id, (seen[name].get(m.id) ?? 0) + 1), {
        concurrency: 16,
      })
    }
    await eventually(
      'both subscriptions to see every message',
      () => seen.billing.size === n && seen.shipping.size === n,
    )
    for (const name of ['billing', 'shipping'] as const) {
      for (const r of receipts) assert.equal(seen[name].get(r.id), 1, `${name} handled ${r.id} once`)
    }
    await eventually('every message acknowledged', async () => {
      const stats = await sluice.stats(topic)
      return stats.subscriptions.every((s) => s.depth === 0 && s.acked === n)
    })
  })

  test('the consumers of one subscription share its messages, each handled once', async (t) => {
    const instance = await target.open(t)
    const sluice = instance.sluice
    const topic = uniqueName('share')
    await sluice.createTopic(topic, { partitions: 3 })
    const n = 10_000
    await publishMany(
      sluice,
      topic,
      Array.from({ length: n }, (_, i) => ({ data: i, key: `user-${i % 500}` })),
    )
    const handledBy = new Map<number, number[]>()
    const counts = [0, 0, 0]
    // Three consumers, each its own client (its own connection where there is one).
    const clients = [sluice, await instance.connect(), await instance.connect()]
    for (const [consumer, client] of clients.entries()) {
      await client.subscribe<number>(
        topic,
        'workers',
        async (m) => {
          counts[consumer]!++
          handledBy.set(m.data, [...(handledBy.get(m.data) ?? []), consumer])
          // Yield so the other consumers get their turn, as real work would.
          await new Promise((resolve) => setImmediate(resolve))
        },
        { concurrency: 8 },
      )
    }
    await eventually('every message handled', () => handledBy.size === n)
    for (const [value, by] of handledBy) assert.equal(by.length, 1, `message ${value} handled ${by.length} times`)
    assert.equal(
      counts.reduce((a, b) => a + b, 0),
      n,
    )
    for (const [consumer, count] of counts.entries())
      assert.ok(count > n / 20, `consumer ${consumer} handled only ${count}`)
  })
}
