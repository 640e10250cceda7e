import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { Message } from '../../message.ts'
import type { Ordering } from '../../types.ts'
import type { ConformanceTarget } from '../target.ts'
import { eventually, publishMany, requires, seededRandom, turns, uniqueName } from '../helpers.ts'

interface Run {
  /** Deliveries (including failed attempts) in the order handlers started. */
  readonly deliveries: { offset: number; partition: number; key: string | null; attempt: number }[]
  /** Most messages in flight at once, overall, per chain, and distinct chains at once. */
  maxInFlight: number
  maxPerChain: number
  maxChains: number
  readonly succeeded: Set<string>
}

/**
 * Runs a handler with random delays (event-loop turns, not clock time) and
 * random failures (redelivered at once: backoff 0) under concurrency 32, and
 * records what was in flight together. Null when the runtime lacks the
 * ordering (its subscribe was refused with UNSUPPORTED).
 */
async function runOrdered(
  target: ConformanceTarget,
  t: import('node:test').TestContext,
  ordering: Ordering,
  partitions: number,
  messages: number,
  keys: number,
  failRate: number,
): Promise<Run | null> {
  const seed = Math.floor(Math.random() * 2 ** 31)
  t.diagnostic(`seed ${seed}`)
  const random = seededRandom(seed)
  const { sluice } = await target.open(t)
  const topic = uniqueName(`order-${ordering}`)
  await sluice.createTopic(topic, { partitions })
  await publishMany(
    sluice,
    topic,
    Array.from({ length: messages }, (_, i) => ({ data: i, key: keys === 0 ? null : `key-${i % keys}` })),
  )
  const chainOf = (m: Message): string =>
    ordering === 'key'
      ? `k:${m.key}`
      : ordering === 'partition'
        ? `p:${m.partition}`
        : ordering === 'global'
          ? 'all'
          : `m:${m.id}`
  const run: Run = { deliveries: [], maxInFlight: 0, maxPerChain: 0, maxChains: 0, succeeded: new Set() }
  const inFlight = new Map<string, number>()
  let total = 0
  const subscribe = () =>
    sluice.subscribe(
      topic,
      'ordered',
      async (m) => {
        const chain = chainOf(m)
        inFlight.set(chain, (inFlight.get(chain) ?? 0) + 1)
        total++
        run.maxInFlight = Math.max(run.maxInFlight, total)
        run.maxPerChain = Math.max(run.maxPerChain, inFlight.get(chain)!)
        run.maxChains = Math.max(run.maxChains, inFlight.size)
        run.deliveries.push({ offset: m.offset, partition: m.partition, key: m.key, attempt: m.attempt })
        try {
          await turns(Math.floor(random() * 4))
          if (random() < failRate) throw new Error('random failure')
          run.succeeded.add(m.id)
        } finally {
          total--
          const left = inFlight.get(chain)! - 1
          if (left === 0) inFlight.delete(chain)
          else inFlight.set(chain, left)
        }
      },
      { ordering, concurrency: 32, maxAttempts: 1000, backoff: { initialMs: 0, maxMs: 0 } },
    )
  if (!(await requires(sluice, [['orderings', ordering]], subscribe))) return null
  await subscribe()
  await eventually(`all ${messages} messages to succeed`, () => run.succeeded.size === messages)
  return run
}

/** Checks that, per chain, deliveries never go back in offset order (a redelivery comes before anything later). */
function assertChainOrder(
  deliveries: Run['deliveries'],
  chainOf: (d: Run['deliveries'][number]) => string | null,
): void {
  const last = new Map<string, number>()
  for (const d of deliveries) {
    const chain = chainOf(d)
    if (chain === null) continue
    const before = last.get(chain)
    assert.ok(
      before === undefined || d.offset >= before,
      `chain ${chain}: offset ${d.offset} (attempt ${d.attempt}) delivered after ${before}`,
    )
    last.set(chain, d.offset)
  }
}

export function orderingCases(target: ConformanceTarget): void {
  test("ordering 'key': one message per key at a time in offset order, redeliveries included, more keys in flight than partitions", async (t) => {
    const run = await runOrdered(target, t, 'key', 4, 2000, 200, 0.1)
    if (run === null) return
    assert.equal(run.maxPerChain, 1, 'two messages of one key were in flight together')
    assertChainOrder(run.deliveries, (d) => `${d.partition}:${d.key}`)
    assert.ok(run.maxChains > 4, `only ${run.maxChains} keys in flight at once on a 4-partition topic`)
    assert.ok(
      run.deliveries.some((d) => d.attempt > 1),
      'the random failures caused redeliveries',
    )
  })

  test("ordering 'partition': one message per partition at a time, in offset order", async (t) => {
    const run = await runOrdered(target, t, 'partition', 4, 1500, 300, 0.1)
    if (run === null) return
    assert.equal(run.maxPerChain, 1, 'two messages of one partition were in flight together')
    assertChainOrder(run.deliveries, (d) => String(d.partition))
    assert.ok(run.maxChains > 1, 'partitions ran in parallel')
    assert.ok(run.maxInFlight <= 4)
  })

  test("ordering 'global': one message at a time, in publish order", async (t) => {
    const run = await runOrdered(target, t, 'global', 1, 800, 50, 0.1)
    if (run === null) return
    assert.equal(run.maxInFlight, 1, 'two messages were in flight together')
    assertChainOrder(run.deliveries, () => 'all')
    const firstSuccesses = run.deliveries.map((d) => d.offset).filter((o, i, all) => all.indexOf(o) === i)
    assert.deepEqual(
      firstSuccesses,
      Array.from({ length: 800 }, (_, i) => i),
      'publish order',
    )
  })

  test("ordering 'none' reaches full concurrency", async (t) => {
    const run = await runOrdered(target, t, 'none', 2, 2000, 5, 0.05)
    if (run === null) return
    assert.equal(run.maxInFlight, 32, `only ${run.maxInFlight} of 32 handlers ran at once`)
  })

  test("ordering 'key' runs keyless messages unordered and in parallel", async (t) => {
    const run = await runOrdered(target, t, 'key', 1, 1000, 0, 0)
    if (run === null) return
    assert.ok(run.maxInFlight > 16, `keyless messages ran only ${run.maxInFlight} at once`)
  })

  test('a subscription joined again with another ordering (no consumer left) delivers all it had held back', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('reorder')
    await sluice.createTopic(topic)
    for (let i = 0; i < 3; i++) await sluice.publish(topic, i, { key: `k${i}` })
    const first = await sluice.subscribe(topic, 's', { ordering: 'partition' })
    for await (const m of first) {
      assert.equal(m.data, 0)
      break // leaves it unsettled: closing gives it back
    }
    await first.close()
    const got: unknown[] = []
    await sluice.subscribe(topic, 's', (m) => void got.push(m.data), { ordering: 'key' })
    await instance.advance(5000)
    await eventually('all three messages', () => got.length >= 3)
    assert.deepEqual([...got].sort(), [0, 1, 2])
  })
}
