import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { ConformanceTarget } from '../target.ts'
import { eventually, requires, turns, uniqueName } from '../helpers.ts'

export function delayedCases(target: ConformanceTarget): void {
  test('a delayed message arrives no earlier than asked, and does not hold back others', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('delay')
    await sluice.createTopic(topic)
    const start = instance.now()
    const later = () => sluice.publish(topic, 'later', { delayMs: 5000, key: 'k' })
    if (!(await requires(sluice, ['delayedDelivery'], later))) return
    await later()
    await sluice.publish(topic, 'at a set time', { deliverAt: new Date(start + 8000) })
    await sluice.publish(topic, 'now', { key: 'k' })
    const got: { data: unknown; at: number }[] = []
    await sluice.subscribe(topic, 's', (m) => void got.push({ data: m.data, at: instance.now() }))
    await eventually('the immediate message', () => got.length === 1)
    assert.equal(got[0]!.data, 'now')
    await instance.advance(4900)
    await turns(20)
    assert.equal(got.length, 1, 'a delayed message arrived early')
    await instance.advance(200)
    await eventually('the 5 s message', () => got.length === 2)
    assert.equal(got[1]!.data, 'later')
    assert.ok(got[1]!.at >= start + 5000)
    await instance.advance(3000)
    await eventually('the 8 s message', () => got.length === 3)
    assert.equal(got[2]!.data, 'at a set time')
    assert.ok(got[2]!.at >= start + 8000)
  })

  test('a delay has no horizon cap: 30 days', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('far')
    await sluice.createTopic(topic)
    const thirtyDays = 30 * 86_400_000
    const nextMonth = () => sluice.publish(topic, 'next month', { delayMs: thirtyDays })
    if (!(await requires(sluice, ['delayedDelivery'], nextMonth))) return
    await nextMonth()
    const got: number[] = []
    await sluice.subscribe(topic, 's', () => void got.push(instance.now()))
    await instance.advance(thirtyDays - 60_000, 3_600_000)
    await turns(20)
    assert.equal(got.length, 0)
    await instance.advance(120_000, 10_000)
    await eventually('the delivery', () => got.length === 1)
  })

  test('a delayed message still waits after a restart, then arrives', async (t) => {
    const instance = await target.open(t)
    if (instance.restart === undefined) return t.skip(`${target.name} keeps nothing across a restart`)
    let sluice = instance.sluice
    const topic = uniqueName('delay-restart')
    await sluice.createTopic(topic)
    const start = instance.now()
    const later = () => sluice.publish(topic, 'later', { delayMs: 10_000 })
    if (!(await requires(sluice, ['delayedDelivery'], later))) return
    await later()
    sluice = await instance.restart()
    const got: number[] = []
    await sluice.subscribe(topic, 's', () => void got.push(instance.now()))
    await instance.advance(9000)
    await turns(20)
    assert.equal(got.length, 0, 'arrived early after the restart')
    await instance.advance(1100)
    await eventually('the delivery', () => got.length === 1)
    assert.ok(got[0]! >= start + 10_000)
  })

  test('delayed messages of one key due at the same time arrive in offset order, past offset 9 too', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('delay-order')
    await sluice.createTopic(topic)
    const at = new Date(instance.now() + 5000)
    const later = () => sluice.publish(topic, 0, { key: 'k', deliverAt: at })
    if (!(await requires(sluice, ['delayedDelivery'], later))) return
    // Offsets 9 and up: where "10" sorts before "9" as text.
    for (let i = 0; i < 9; i++) await sluice.publish(topic, `filler ${i}`, { key: `other-${i}` })
    for (let i = 0; i < 4; i++) await sluice.publish(topic, i, { key: 'k', deliverAt: at })
    const got: unknown[] = []
    await sluice.subscribe(topic, 's', (m) => {
      if (m.key === 'k' && m.offset >= 9) got.push(m.data)
    })
    await eventually('the fillers and the first', () => got.length === 0)
    await turns(20)
    await instance.advance(6000)
    await eventually('the delayed messages', () => got.length === 4)
    assert.deepEqual(got, [0, 1, 2, 3])
  })
}
