import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import type { ConformanceTarget } from '../target.ts'
import { eventually, uniqueName } from '../helpers.ts'

/**
 * The time-driven promises on a real clock, for servers whose time cannot
 * be faked: leases, delays, nack delays, backoff into the dead-letter topic,
 * auto-extension. Deadlines of a few hundred milliseconds keep them short;
 * each checks "no earlier than" exactly and "not much later" loosely (a
 * shared machine may be slow). They pass on a fake clock too, where
 * `advance` moves it instead of waiting.
 */
export function realClockCases(target: ConformanceTarget): void {
  test('real clock: a delayed message arrives no earlier than its delay', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    if (!sluice.capabilities().delayedDelivery) return
    const topic = uniqueName('rc-delay')
    await sluice.createTopic(topic)
    const start = instance.now()
    await sluice.publish(topic, 'later', { delayMs: 300 })
    let at = 0
    await sluice.subscribe(topic, 's', () => void (at = instance.now()))
    for (let i = 0; i < 40 && at === 0; i++) await instance.advance(100, 50)
    await eventually('the delayed message', () => at > 0, 5000)
    assert.ok(at - start >= 300, `arrived ${at - start} ms after publishing, asked for 300`)
  })

  test('real clock: a lease not settled within ackTimeoutMs (and not extendable) is lost and the message comes back', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('rc-lease')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'x')
    const attempts: { attempt: number; at: number }[] = []
    await sluice.subscribe(
      topic,
      's',
      (m) => {
        attempts.push({ attempt: m.attempt, at: instance.now() })
        // The first delivery does not finish in time: its lease cannot be extended past maxLeaseMs, so it is lost
        // (its signal aborts); a second handler slot takes the redelivery.
        return m.attempt === 1 ? sleep(1500) : undefined
      },
      { ackTimeoutMs: 300, maxLeaseMs: 300, concurrency: 2, backoff: { initialMs: 50, maxMs: 50 } },
    )
    for (let i = 0; i < 40 && attempts.length < 2; i++) await instance.advance(100, 50)
    await eventually('the redelivery', () => attempts.length >= 2, 5000)
    assert.equal(attempts[1]!.attempt, 2)
    assert.ok(attempts[1]!.at - attempts[0]!.at >= 300, `redelivered after ${attempts[1]!.at - attempts[0]!.at} ms`)
  })

  test('real clock: a nack with a delay offers the message again no earlier than the delay', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('rc-nack')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'x')
    const times: number[] = []
    await sluice.subscribe(topic, 's', async (m) => {
      times.push(instance.now())
      if (m.attempt === 1) await m.nack({ delayMs: 250 })
    })
    for (let i = 0; i < 40 && times.length < 2; i++) await instance.advance(100, 50)
    await eventually('the second delivery', () => times.length >= 2, 5000)
    assert.ok(times[1]! - times[0]! >= 250, `offered again after ${times[1]! - times[0]!} ms, asked for 250`)
  })

  test('real clock: a message that fails every attempt reaches the dead-letter topic after its backoffs', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('rc-dead')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'doomed', { id: 'doomed-1' })
    let tries = 0
    await sluice.subscribe(
      topic,
      's',
      () => {
        tries++
        throw new Error('always fails')
      },
      { maxAttempts: 3, backoff: { initialMs: 50, maxMs: 100 } },
    )
    const dead = async (): Promise<boolean> => (await sluice.deadLetters(topic).catch(() => [])).length === 1
    for (let i = 0; i < 40 && !(await dead()); i++) await instance.advance(100, 50)
    await eventually('the dead letter', dead, 5000)
    assert.equal(tries, 3)
    const [letter] = await sluice.deadLetters(topic)
    assert.equal(letter!.id, 'doomed-1')
    assert.equal(letter!.attempts, 3)
    assert.equal(letter!.error, 'always fails')
  })

  test('real clock: a handler running three lease timeouts long keeps its lease and is delivered once', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('rc-extend')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'slow')
    const seen = { deliveries: 0, done: false }
    await sluice.subscribe(
      topic,
      's',
      async () => {
        seen.deliveries++
        await sleep(900)
        seen.done = true
      },
      { ackTimeoutMs: 300, maxLeaseMs: 10_000 },
    )
    for (let i = 0; i < 40 && !seen.done; i++) await instance.advance(100, 50)
    await eventually('the slow handler', () => seen.done, 5000)
    await instance.advance(500, 50)
    assert.equal(seen.deliveries, 1, 'the lease was extended while the handler ran')
  })
}
