import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisPrefix } from '../../../test/helpers/redis-prefix.ts'

// Three Sluice instances (three connections) share one key-ordered subscription; handlers nack, hang until their
// lease runs out, or succeed, at random. A message may start only when every earlier message of its key is done,
// and everything ends acknowledged.
test('Redis: key order holds across instances through nacks and expired leases, and nothing is stuck', async (t) => {
  const redis = redisPrefix(t)
  const instances = await Promise.all([0, 1, 2].map(() => redis.open()))
  const clock = redis.clock
  const [producer] = instances
  await producer!.createTopic('orders', { partitions: 2 })
  const keys = ['a', 'b|c', 'd\u0000e', '{f}', 'g:h']
  const perKey = 12
  const expected = new Map<string, number[]>()
  for (let i = 0; i < perKey; i++)
    for (const k of keys) {
      const r = await producer!.publish('orders', { k, i }, { key: k })
      expected.set(k, [...(expected.get(k) ?? []), r.offset])
    }
  const done = new Map<string, number[]>() // offsets done per key, in the order they were done
  const running = new Map<string, number>()
  const violations: string[] = []
  let seed = 7
  const random = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31
  const subs = await Promise.all(
    instances.map((s) =>
      s.subscribe<{ k: string; i: number }>(
        'orders',
        'work',
        async (m) => {
          const k = m.key!
          if (running.has(k)) violations.push(`${k}: ${m.offset} started while ${running.get(k)} ran`)
          const before = expected.get(k)!.filter((o) => o < m.offset)
          const doneOf = done.get(k) ?? []
          if (!before.every((o) => doneOf.includes(o)))
            violations.push(`${k}: ${m.offset} started before all of ${before.join(',')} were done`)
          running.set(k, m.offset)
          const roll = random()
          try {
            if (roll < 0.25) throw new Error('nack')
            if (roll < 0.4) {
              await new Promise<void>((resolve) => m.signal.addEventListener('abort', () => resolve(), { once: true }))
              throw new Error('lease lost')
            }
            await new Promise((r) => setTimeout(r, random() * 5))
          } finally {
            running.delete(k)
          }
          done.set(k, [...doneOf, m.offset])
        },
        { ackTimeoutMs: 1000, maxLeaseMs: 1000, maxAttempts: 1000, backoff: { initialMs: 10, maxMs: 50 }, prefetch: 4 },
      ),
    ),
  )
  const total = keys.length * perKey
  const deadline = Date.now() + 60_000
  for (;;) {
    const stats = await producer!.stats('orders')
    const sub = stats.subscriptions.find((x) => x.subscription === 'work')!
    if (sub.acked === total) break
    if (Date.now() > deadline) assert.fail(`stuck: ${sub.acked} of ${total} acknowledged, ${JSON.stringify(sub)}`)
    clock.advance(300)
    await new Promise((r) => setTimeout(r, 30))
  }
  for (const s of subs) await s.close()
  assert.deepEqual(violations, [])
  // A handler that succeeded just as its lease ran out is done again (at-least-once): only right after itself,
  // as its key stays held until it is acknowledged.
  for (const k of keys) {
    const once = (done.get(k) ?? []).filter((o, i, all) => i === 0 || all[i - 1] !== o)
    assert.deepEqual(once, expected.get(k), `key ${JSON.stringify(k)} done in offset order`)
  }
})
