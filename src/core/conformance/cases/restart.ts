import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ConformanceTarget } from '../target.ts'
import { eventually, publishMany, requires, turns, uniqueName } from '../helpers.ts'

export function restartCases(target: ConformanceTarget): void {
  test('after a restart, acknowledged messages never come back and unacknowledged ones do', async (t) => {
    const instance = await target.open(t)
    if (instance.restart === undefined) return t.skip(`${target.name} keeps nothing across a restart`)
    let sluice = instance.sluice
    const topic = uniqueName('restart')
    await sluice.createTopic(topic, { partitions: 2 })
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 100 }, (_, i) => ({ data: i, key: `k${i % 7}` })),
    )
    const acked = new Set<number>()
    const subscribe = () => sluice.subscribe<number>(topic, 's', { prefetch: 0, ordering: 'none' })
    if (!(await requires(sluice, [['orderings', 'none']], subscribe))) return
    const sub = await subscribe()
    for await (const m of sub) {
      if (m.data % 2 === 0) {
        await m.ack()
        acked.add(m.data)
      } else {
        await m.nack({ delayMs: 3_600_000 })
      }
      if (acked.size >= 30) break
    }
    sluice = await instance.restart()
    const after = new Map<number, number>()
    await sluice.subscribe<number>(topic, 's', (m) => void after.set(m.data, m.attempt), {
      ordering: 'none',
      concurrency: 8,
    })
    // The nacked ones come back once their delay is over: at the restart on a runtime that keeps delays in
    // memory (the embedded engine), an hour later on one that keeps them with the data (Redis).
    await instance.advance(3_600_000, 60_000)
    await eventually('every unacknowledged message', () => after.size === 100 - acked.size)
    for (const value of acked) assert.equal(after.has(value), false, `acknowledged message ${value} came back`)
    await turns(20)
    assert.equal(after.size, 100 - acked.size)
  })
}
