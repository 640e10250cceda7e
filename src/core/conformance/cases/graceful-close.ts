import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Message } from '../../message.ts'
import type { ConformanceTarget } from '../target.ts'
import { deferred, eventually, publishMany, requires, turns, uniqueName } from '../helpers.ts'

/**
 * What a clean close (what `closeOnSignals` does) promises: everything not
 * yet handed to a handler goes back, as if never delivered; what a handler
 * was given is settled or counted as a failed delivery; close resolves after
 * the acknowledgements have landed.
 */
export function gracefulCloseCases(target: ConformanceTarget): void {
  test('at-most-once: a clean close gives back every prefetched message; none is lost, none handled twice', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('amo-close')
    await sluice.createTopic(topic)
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 100 }, (_, i) => ({ data: i })),
    )
    const amo = { delivery: 'at-most-once', ordering: 'none' } as const
    const needs = [
      ['deliveries', 'at-most-once'],
      ['orderings', 'none'],
    ] as const
    if (!(await requires(sluice, needs, () => sluice.subscribe(topic, 's', amo)))) return
    const handled = new Map<number, number>()
    const handle = (m: Message<number>): void => {
      handled.set(m.data, (handled.get(m.data) ?? 0) + 1)
    }
    // Each round closes while both handlers are busy and the prefetched messages wait behind them.
    for (let round = 0; round < 10; round++) {
      const gate = deferred()
      let running = 0
      const sub = await sluice.subscribe<number>(
        topic,
        's',
        async (m) => {
          running++
          handle(m)
          await gate.promise
        },
        { delivery: 'at-most-once', ordering: 'none', concurrency: 2, prefetch: 8 },
      )
      const left = 100 - handled.size
      await eventually('two handlers running and the prefetch full', async () => {
        const stats = (await sluice.stats(topic)).subscriptions[0]!
        return running === Math.min(2, left) && stats.inFlight === Math.min(10, left)
      })
      const closing = sub.close()
      gate.resolve()
      await closing
    }
    // The rest, by a consumer that stays.
    const rest = await sluice.subscribe<number>(topic, 's', handle, { delivery: 'at-most-once', ordering: 'none' })
    await eventually('every message handled, or none left to handle', async () => {
      if (handled.size === 100) return true
      const stats = (await sluice.stats(topic)).subscriptions[0]!
      return stats.depth === 0 && stats.inFlight === 0
    })
    assert.equal(handled.size, 100, `${100 - handled.size} messages never reached a handler, yet none is left`)
    await rest.close()
    for (const [value, count] of handled) assert.equal(count, 1, `message ${value} handled ${count} times`)
    const stats = (await sluice.stats(topic)).subscriptions[0]!
    assert.equal(stats.depth, 0)
    assert.equal(stats.acked, 100)
  })

  test('a clean close gives prefetched messages back uncounted: attempts stay at 1, nothing is dead-lettered', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('close-attempts')
    await sluice.createTopic(topic)
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 8 }, (_, i) => ({ data: i })),
    )
    const options = { prefetch: 100, maxAttempts: 3, ordering: 'none' as const }
    if (!(await requires(sluice, [['orderings', 'none']], () => sluice.subscribe(topic, 's', options)))) return
    // As `sluice consume --count 1` does: take one, acknowledge it, leave.
    for (let round = 0; round < 7; round++) {
      const sub = await sluice.subscribe<number>(topic, 's', options)
      for await (const m of sub) {
        assert.equal(m.attempt, 1, `round ${round}: message ${m.data} came as attempt ${m.attempt}`)
        await m.ack()
        break
      }
    }
    const last = await sluice.subscribe<number>(topic, 's', options)
    for await (const m of last) {
      assert.equal(m.attempt, 1, `the last message came as attempt ${m.attempt}`)
      await m.ack()
      break
    }
    const stats = (await sluice.stats(topic)).subscriptions[0]!
    assert.equal(stats.depth, 0)
    assert.equal(stats.deadLettered, 0)
    assert.equal(stats.redeliveries, 0)
  })

  test('close with drain resolves once the acknowledgements of finished handlers have landed', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('close-acks')
    await sluice.createTopic(topic)
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 50 }, (_, i) => ({ data: i })),
    )
    let handled = 0
    const subscribe = () =>
      sluice.subscribe<number>(
        topic,
        's',
        () => {
          handled++
        },
        {
          concurrency: 16,
          ordering: 'none',
        },
      )
    if (!(await requires(sluice, [['orderings', 'none']], subscribe))) return
    const sub = await subscribe()
    await eventually('all handled', () => handled === 50)
    await sub.close()
    // No waiting: what close resolved after must already be recorded.
    assert.equal((await sluice.stats(topic)).subscriptions[0]!.depth, 0)
  })

  test('close without drain aborts the signal of the message a for-await loop holds', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('close-iter')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'held')
    const sub = await sluice.subscribe(topic, 's')
    const it = sub[Symbol.asyncIterator]()
    const m = (await it.next()).value as Message
    assert.equal(m.signal.aborted, false)
    await sub.close({ drain: false })
    assert.equal(m.signal.aborted, true, 'the loop body would go on working on a message it no longer holds')
  })

  test('a transaction being written when its consumer leaves acknowledges its input once; it is not done again', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const input = uniqueName('tx-leave-in')
    const output = uniqueName('tx-leave-out')
    await sluice.createTopic(input)
    await sluice.createTopic(output)
    await publishMany(
      sluice,
      input,
      Array.from({ length: 20 }, (_, i) => ({ data: i })),
    )
    const needs = [['deliveries', 'exactly-once'], 'transactions'] as const
    const declare = () => sluice.subscribe(input, 'transform', { delivery: 'exactly-once' })
    if (!(await requires(sluice, needs, declare))) return
    const commits: Promise<unknown>[] = []
    for (let round = 0; round < 20; round++) {
      const started = deferred()
      const sub = await sluice.subscribe<number>(
        input,
        'transform',
        (m) => {
          const commit = m.ack({ publish: [{ topic: output, data: m.data }] })
          commits.push(commit.catch(() => undefined))
          started.resolve()
          return commit
        },
        { delivery: 'exactly-once', prefetch: 0, backoff: { initialMs: 0, maxMs: 0 } },
      )
      await started.promise
      // Leave while the commit is on its way.
      await sub.close({ drain: false })
      if ((await sluice.stats(input)).subscriptions[0]!.depth === 0) break
    }
    await Promise.all(commits)
    // Whatever is left, consumed by a consumer that stays.
    let handled = 0
    await sluice.subscribe<number>(
      input,
      'transform',
      async (m) => {
        await m.ack({ publish: [{ topic: output, data: m.data }] })
        handled++
      },
      { delivery: 'exactly-once' },
    )
    await eventually('every input done', async () => (await sluice.stats(input)).subscriptions[0]!.depth === 0)
    await turns(20)
    const outputs = (await sluice.read<number>(output, 0, 0, 1000)).map((m) => m.data)
    const counts = new Map<number, number>()
    for (const v of outputs) counts.set(v, (counts.get(v) ?? 0) + 1)
    for (const [v, n] of counts) assert.equal(n, 1, `input ${v} has ${n} outputs (handled again: ${handled})`)
    assert.equal(counts.size, 20)
  })
}
