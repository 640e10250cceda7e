// Over 500 lines: every backpressure case of the suite (bounds with reject, block and drop-oldest, rate limits,
// the stats that count them), each one promise of SEMANTICS.md, gated by the capability it needs.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCode, QueueFullError, RateLimitedError, SluiceError } from '../../errors.ts'
import type { Message } from '../../message.ts'
import type { ConformanceTarget } from '../target.ts'
import type { Need } from '../../capabilities.ts'
import type { Sluice } from '../../sluice.ts'
import type { TopicConfig } from '../../types.ts'
import { deferred, eventually, publishMany, requires, seededRandom, turns, uniqueName } from '../helpers.ts'

function code(expected: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
    assert.equal(err.code, expected, err.message)
    return true
  }
}

/**
 * Acknowledges the first `n` messages, in offset order (ordering 'partition');
 * false when the runtime lacks that ordering (its subscribe refused, UNSUPPORTED asserted).
 */
async function ackFirst(sluice: Sluice, topic: string, subscription: string, n: number): Promise<boolean> {
  const subscribe = () => sluice.subscribe(topic, subscription, { prefetch: 0, ordering: 'partition' })
  if (!(await requires(sluice, [['orderings', 'partition']], subscribe))) return false
  const sub = await subscribe()
  const it = sub[Symbol.asyncIterator]()
  for (let i = 0; i < n; i++) await ((await it.next()).value as Message).ack()
  await sub.close()
  return true
}

/**
 * Creates a topic with `limits`; false when the runtime lacks a limit it sets
 * or its overflow mode (the createTopic refused, UNSUPPORTED asserted).
 */
async function createBounded(sluice: Sluice, topic: string, config: TopicConfig): Promise<boolean> {
  const limits = config.limits ?? {}
  const needs: Need[] = [
    ...(limits.maxMessages === undefined ? [] : [['limitBy', 'maxMessages'] as const]),
    ...(limits.maxBytes === undefined ? [] : [['limitBy', 'maxBytes'] as const]),
    ['overflow', limits.overflow ?? 'reject'],
  ]
  const create = () => sluice.createTopic(topic, config)
  if (!(await requires(sluice, needs, create))) return false
  await create()
  return true
}

export function backpressureCases(target: ConformanceTarget): void {
  test("maxMessages with 'reject': exactly the limit is stored, the next throws QUEUE_FULL with retryAfterMs; acknowledgements make room", async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('bounded')
    if (!(await createBounded(sluice, topic, { limits: { maxMessages: 1000, overflow: 'reject' } }))) return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 1000 }, (_, i) => ({ data: i })),
    )
    await assert.rejects(sluice.publish(topic, 1000), (err: unknown) => {
      code(ErrorCode.QueueFull)(err)
      assert.ok(err instanceof QueueFullError)
      assert.ok(err.retryAfterMs > 0, `retryAfterMs ${err.retryAfterMs}`)
      return true
    })
    await assert.rejects(sluice.publishBatch(topic, [{ data: 'a' }, { data: 'b' }]), code(ErrorCode.QueueFull))
    const stats = await sluice.stats(topic)
    assert.equal(stats.messages, 1000, 'nothing of the refused publishes was stored')
    assert.equal(stats.backlog, 1000)
    assert.equal(stats.rejected, 3)
    if (!(await ackFirst(sluice, topic, 's', 10))) return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 10 }, (_, i) => ({ data: 1000 + i })),
    )
    await assert.rejects(sluice.publish(topic, 'one too many'), code(ErrorCode.QueueFull))
  })

  test("maxBytes with 'reject' bounds the backlog's stored bytes", async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('bytes')
    if (!(await createBounded(sluice, topic, { limits: { maxBytes: 100_000 } }))) return
    let stored = 0
    for (;;) {
      try {
        await sluice.publish(topic, Buffer.alloc(1024, 1))
        stored++
      } catch (err) {
        code(ErrorCode.QueueFull)(err)
        break
      }
      assert.ok(stored < 200, 'never filled up')
    }
    const stats = await sluice.stats(topic)
    const perMessage = stats.bytes / stats.messages
    assert.equal(stats.messages, stored)
    assert.ok(stats.bytes <= 100_000, `${stats.bytes} bytes stored`)
    assert.ok(stats.bytes + perMessage > 100_000, 'filled up to the limit')
    // Acknowledging makes room again (a file log counts bytes from its sparse index, up to 4 KiB early: 10 acknowledged
    // KiB make room for at least 5); a batch bigger than the whole bound can never fit.
    if (!(await ackFirst(sluice, topic, 's', 10))) return
    let again = 0
    for (;;) {
      try {
        await sluice.publish(topic, Buffer.alloc(1024, 2))
        again++
      } catch (err) {
        code(ErrorCode.QueueFull)(err)
        break
      }
      assert.ok(again <= 10, 'more went in than was acknowledged')
    }
    assert.ok(again >= 5, `only ${again} accepted after 10 acknowledged`)
    await assert.rejects(
      sluice.publishBatch(
        topic,
        Array.from({ length: 120 }, () => ({ data: Buffer.alloc(1024) })),
      ),
      code(ErrorCode.InvalidArgument),
    )
    assert.equal((await sluice.stats(topic)).messages, stored + again)
  })

  test("'block' waits for room and resumes as soon as there is some; it times out or aborts cleanly", async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('block')
    if (!(await createBounded(sluice, topic, { limits: { maxMessages: 5, overflow: 'block' } }))) return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 5 }, (_, i) => ({ data: i })),
    )
    let done = false
    const blocked = sluice.publish(topic, 'waits', { timeoutMs: 60_000 }).then((r) => {
      done = true
      return r
    })
    await turns(30)
    assert.equal(done, false, 'a publish into a full topic went through')
    if (!(await ackFirst(sluice, topic, 's', 1))) return
    const receipt = await blocked
    assert.equal(receipt.offset, 5)
    // Full again: a short timeout ends the wait with TIMEOUT, nothing stored.
    const timingOut = assert.rejects(sluice.publish(topic, 'gives up', { timeoutMs: 500 }), code(ErrorCode.Timeout))
    await turns(10)
    await instance.advance(600)
    await timingOut
    const controller = new AbortController()
    const aborted = assert.rejects(
      sluice.publish(topic, 'aborted', { signal: controller.signal }),
      code(ErrorCode.Aborted),
    )
    await turns(10)
    controller.abort()
    await aborted
    await turns(10)
    assert.equal((await sluice.stats(topic)).messages, 6)
  })

  test("'drop-oldest' evicts exactly the oldest, counts them, never delivers them, and dead-letters them if asked", async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('drop')
    const dlq = `${topic}.evicted`
    if (
      !(await createBounded(sluice, topic, { limits: { maxMessages: 100, overflow: 'drop-oldest', deadLetter: dlq } }))
    )
      return
    // A subscription that exists while the evictions happen (it holds no leases: prefetch 0, never iterated).
    const watcher = await sluice.subscribe(topic, 'late', { prefetch: 0 })
    // In batches of 10: each later batch evicts the 10 oldest.
    for (let i = 0; i < 150; i += 10) {
      await sluice.publishBatch(
        topic,
        Array.from({ length: 10 }, (_, j) => ({ data: i + j })),
      )
    }
    const stats = await sluice.stats(topic)
    assert.equal(stats.dropped, 50)
    assert.equal(stats.backlog, 100)
    assert.equal(stats.subscriptions.find((s) => s.subscription === 'late')!.dropped, 50)
    const seen: number[] = []
    const fresh = () =>
      sluice.subscribe<number>(topic, 'fresh', (m) => void seen.push(m.data), { ordering: 'partition' })
    if (!(await requires(sluice, [['orderings', 'partition']], fresh))) return
    await fresh()
    const late: number[] = []
    await watcher.close()
    await sluice.subscribe<number>(topic, 'late', (m) => void late.push(m.data), { ordering: 'partition' })
    await eventually('both subscriptions to get the 100 kept', () => seen.length === 100 && late.length === 100)
    assert.deepEqual(
      seen,
      Array.from({ length: 100 }, (_, i) => 50 + i),
    )
    assert.deepEqual(late, seen, 'the evicted are never delivered, also to a subscription that existed before')
    const evicted = await sluice.read<number>(dlq, 0, 0, 100)
    assert.deepEqual(
      evicted.map((m) => m.data),
      Array.from({ length: 50 }, (_, i) => i),
    )
  })

  test('a rate limit of 1,000/s with burst 100: no 1-second window holds more; reject says when to retry, wait delays', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const rejecting = uniqueName('rate-reject')
    const create = () =>
      sluice.createTopic(rejecting, { rateLimit: { perSecond: 1000, burst: 100, onLimit: 'reject' } })
    if (!(await requires(sluice, [['rateLimitScopes', 'topic']], create))) return
    await create()
    let accepted = 0
    let refusal: RateLimitedError | null = null
    for (let i = 0; i < 2000 && refusal === null; i++) {
      try {
        await sluice.publish(rejecting, i)
        accepted++
      } catch (err) {
        code(ErrorCode.RateLimited)(err)
        refusal = err as RateLimitedError
      }
    }
    assert.equal(accepted, 1100)
    assert.ok(
      refusal !== null && refusal.retryAfterMs > 0 && refusal.retryAfterMs <= 1000,
      `retryAfterMs ${refusal?.retryAfterMs}`,
    )
    await instance.advance(1000)
    await sluice.publish(rejecting, 'after a second')

    const waiting = uniqueName('rate-wait')
    await sluice.createTopic(waiting, { rateLimit: { perSecond: 1000, burst: 100, onLimit: 'wait' } })
    const receipts = Array.from({ length: 3300 }, (_, i) => sluice.publish(waiting, i, { timeoutMs: 60_000 }))
    let settled = 0
    for (const r of receipts) void r.then(() => settled++)
    await eventually('the first 1,100 go at once', () => settled >= 1100)
    // A round trip after them: anything else admitted without the clock moving would have settled by now.
    await sluice.stats(waiting)
    await turns(30)
    assert.equal(settled, 1100, 'the first 1,100 go at once, the rest wait')
    for (let s = 0; s < 3; s++) {
      await instance.advance(1000, 100)
      await turns(30)
    }
    await Promise.all(receipts)
    const stored = await sluice.read(waiting, 0, 0, 10_000)
    assert.equal(stored.length, 3300)
    for (const m of stored) {
      const inWindow = stored.filter((o) => o.timestamp > m.timestamp - 1000 && o.timestamp <= m.timestamp).length
      assert.ok(inWindow <= 1100, `${inWindow} stored in the second before offset ${m.offset}`)
    }
  })

  test('stats match a scripted scenario: published, acknowledged, depth, in flight, dead-lettered, dropped, rejected', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('figures')
    if (!(await createBounded(sluice, topic, { limits: { maxMessages: 40, overflow: 'reject' } }))) return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 40 }, (_, i) => ({ data: i })),
    )
    await assert.rejects(sluice.publish(topic, 'refused'), code(ErrorCode.QueueFull))
    const sub = await sluice.subscribe<number>(topic, 'work', {
      prefetch: 0,
      maxAttempts: 1,
      deadLetter: `${topic}.dlq`,
    })
    const it = sub[Symbol.asyncIterator]()
    for (let i = 0; i < 10; i++) await ((await it.next()).value as Message).ack()
    for (let i = 0; i < 3; i++) await ((await it.next()).value as Message).nack()
    const held = (await it.next()).value as Message
    await eventually('the dead letters', async () => (await sluice.stats(topic)).subscriptions[0]!.deadLettered === 3)
    const stats = await sluice.stats(topic)
    const s = stats.subscriptions[0]!
    assert.equal(stats.published, 40)
    assert.equal(stats.rejected, 1)
    assert.equal(stats.dropped, 0)
    assert.equal(stats.messages, 40)
    assert.equal(s.acked, 10 + 3, 'dead-lettered messages are done for the subscription')
    assert.equal(s.deadLettered, 3)
    assert.equal(s.inFlight, 1)
    assert.equal(s.depth, 40 - 13)
    assert.equal(stats.backlog, 40 - 13)
    assert.equal(s.consumers, 1)
    assert.ok(s.oldestUnackedAgeMs !== null)
    assert.equal(held.data, 13)
    // Rates once a one-second bucket has closed: time to empty and the recommendation follow from them.
    await instance.advance(1000)
    const later = await sluice.stats(topic, { targetTimeToEmptyMs: 10_000 })
    const w = later.subscriptions[0]!
    assert.equal(later.publishRate, 40)
    assert.equal(w.arrivalRate, 40)
    assert.ok(w.processingRate > 0, `processing rate ${w.processingRate}`)
    assert.equal(w.timeToEmptyMs, Math.round((w.depth / w.processingRate) * 1000))
    assert.ok(w.recommendedConsumers !== null && w.recommendedConsumers >= 1)
  })

  test("concurrent 'drop-oldest' publishes evict each oldest message once", async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('drop-race')
    const dlq = `${topic}.evicted`
    if (
      !(await createBounded(sluice, topic, { limits: { maxMessages: 10, overflow: 'drop-oldest', deadLetter: dlq } }))
    )
      return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 10 }, (_, i) => ({ data: i })),
    )
    await Promise.all(Array.from({ length: 5 }, (_, i) => sluice.publish(topic, 10 + i)))
    const stats = await sluice.stats(topic)
    assert.equal(stats.dropped, 5)
    assert.equal(stats.backlog, 10)
    const evicted = await sluice.read<number>(dlq, 0, 0, 100)
    assert.deepEqual(
      evicted.map((m) => m.data),
      [0, 1, 2, 3, 4],
    )
  })

  test('maxBytes holds with messages of very different sizes', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('mixed-bytes')
    if (!(await createBounded(sluice, topic, { limits: { maxBytes: 20_000 } }))) return
    let payloadBytes = 0
    for (let i = 0; ; i++) {
      const size = i % 4 === 3 ? 4000 : 100
      try {
        await sluice.publish(topic, Buffer.alloc(size, 1))
        payloadBytes += size
      } catch (err) {
        code(ErrorCode.QueueFull)(err)
        break
      }
      assert.ok(i < 1000, 'never filled up')
    }
    assert.ok(payloadBytes <= 20_000, `${payloadBytes} payload bytes accepted under a 20,000-byte bound`)
    assert.ok((await sluice.stats(topic)).bytes <= 20_000)
  })

  test('acknowledgements out of order make room too', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('out-of-order')
    if (!(await createBounded(sluice, topic, { partitions: 1, limits: { maxMessages: 10 } }))) return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 10 }, (_, i) => ({ data: i })),
    )
    // The first message's handler holds it; the nine after it are acknowledged around it.
    const hold = deferred()
    const subscribe = () =>
      sluice.subscribe<number>(
        topic,
        'w',
        async (m) => {
          if (m.data === 0) await hold.promise
        },
        { ordering: 'none', concurrency: 10 },
      )
    if (!(await requires(sluice, [['orderings', 'none']], subscribe))) return
    const sub = await subscribe()
    await eventually('nine acknowledged', async () => (await sluice.stats(topic)).subscriptions[0]!.acked === 9)
    assert.equal((await sluice.stats(topic)).backlog, 1, 'only the first is unacknowledged')
    // Stop consuming (the held one stays unacknowledged), so that only the bound decides what follows.
    await sub.close({ drain: false, timeoutMs: 0 })
    hold.resolve()
    await sluice.publishBatch(
      topic,
      Array.from({ length: 9 }, (_, i) => ({ data: 10 + i })),
    )
    await assert.rejects(sluice.publish(topic, 'full again'), code(ErrorCode.QueueFull))
  })

  test('a new subscription starting from the earliest message counts in the bound at once', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('late-joiner')
    if (!(await createBounded(sluice, topic, { partitions: 1, limits: { maxMessages: 10 } }))) return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 10 }, (_, i) => ({ data: i })),
    )
    if (!(await ackFirst(sluice, topic, 'early', 10))) return
    // Everything acknowledged: room for 10 more, and the admissions since are what the bound counts.
    await sluice.publish(topic, 'after')
    assert.equal((await sluice.stats(topic)).backlog, 1)
    // A subscription from the earliest message has all 11 still retained to read: the topic is over its bound.
    const late = await sluice.subscribe(topic, 'late', { prefetch: 0, startAt: 'earliest' })
    assert.equal((await sluice.stats(topic)).backlog, 11)
    await assert.rejects(sluice.publish(topic, 'one too many'), code(ErrorCode.QueueFull))
    await late.close()
  })

  test("'block': a waiter that times out lets the smaller ones behind it in", async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('block-line')
    if (!(await createBounded(sluice, topic, { limits: { maxMessages: 10, overflow: 'block' } }))) return
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 8 }, (_, i) => ({ data: i })),
    )
    const big = assert.rejects(
      sluice.publishBatch(
        topic,
        Array.from({ length: 5 }, () => ({ data: 'big' })),
        { timeoutMs: 500 },
      ),
      code(ErrorCode.Timeout),
    )
    await turns(10)
    await sluice.stats(topic)
    let small = false
    const behind = sluice.publish(topic, 'small', { timeoutMs: 60_000 }).then(() => (small = true))
    await sluice.stats(topic)
    await turns(10)
    assert.equal(small, false, 'first come, first served: the small one waits behind the big one')
    await instance.advance(600)
    await big
    await behind
    assert.equal((await sluice.stats(topic)).messages, 9)
  })
}

export function dropOldestUnderLoadCases(target: ConformanceTarget): void {
  test("'drop-oldest' under load evicts only messages no handler has: none both handled and evicted, keys one at a time, no lost lease, one count everywhere", async (t) => {
    const seed = Math.floor(Math.random() * 2 ** 31)
    t.diagnostic(`seed ${seed}`)
    const random = seededRandom(seed)
    const { sluice } = await target.open(t)
    const topic = uniqueName('drop-load')
    const dlq = `${topic}.evicted`
    const config = { partitions: 2, limits: { maxMessages: 80, overflow: 'drop-oldest', deadLetter: dlq } } as const
    if (!(await createBounded(sluice, topic, config))) return
    const handled = new Set<string>()
    const leaseLost: string[] = []
    const activeByKey = new Map<string, number>()
    let sameKeyAtOnce = 0
    await sluice.subscribe<number>(
      topic,
      'work',
      async (m) => {
        const key = m.key!
        const active = (activeByKey.get(key) ?? 0) + 1
        activeByKey.set(key, active)
        if (active > 1) sameKeyAtOnce++
        await turns(Math.floor(random() * 6))
        // Done with the key: acknowledging lets the next message of the key go.
        activeByKey.set(key, active - 1)
        try {
          await m.ack()
          handled.add(m.id)
        } catch (err) {
          if (err instanceof SluiceError && err.code === ErrorCode.LeaseLost) leaseLost.push(m.id)
          else throw err
        }
      },
      { ordering: 'key', concurrency: 8, maxAttempts: 1000, backoff: { initialMs: 0, maxMs: 0 } },
    )
    const total = 600
    const ids: string[] = []
    // Fast: several batches on their way at once, far faster than the handlers go. The bound (80) leaves room for
    // what is in flight (at most concurrency + prefetch, 16) besides the batches being stored (40).
    for (let i = 0; i < total; i += 40) {
      const receipts = await Promise.all(
        Array.from({ length: 4 }, (_, b) =>
          sluice.publishBatch(
            topic,
            Array.from({ length: 10 }, (_, j) => ({ data: i + b * 10 + j, key: `key-${(i + b * 10 + j) % 20}` })),
          ),
        ),
      )
      for (const batch of receipts) ids.push(...batch.map((r) => r.id))
    }
    const evictedIds = async (): Promise<string[]> => {
      const out: string[] = []
      for (let p = 0; p < 2; p++) out.push(...(await sluice.read(dlq, p, 0, 10_000)).map((m) => m.id))
      return out
    }
    await eventually(
      'every message handled or evicted',
      async () => handled.size + leaseLost.length + (await evictedIds()).length >= total,
    )
    const evicted = await evictedIds()
    const both = evicted.filter((id) => handled.has(id))
    const stats = await sluice.stats(topic)
    t.diagnostic(
      `handled ${handled.size}, evicted ${evicted.length}, both ${both.length}, same key at once ${sameKeyAtOnce}, lease lost ${leaseLost.length}, dropped ${stats.dropped} / ${stats.subscriptions[0]!.dropped}`,
    )
    assert.equal(both.length, 0, `${both.length} messages were handled and also dead-lettered as evicted`)
    assert.equal(sameKeyAtOnce, 0, 'handlers of the same key ran at once')
    assert.deepEqual(leaseLost, [], 'handler successes were refused with LEASE_LOST')
    assert.equal(new Set(evicted).size, evicted.length, 'a message was dead-lettered twice')
    assert.deepEqual(new Set([...handled, ...evicted]), new Set(ids), 'every message was either handled or evicted')
    assert.ok(evicted.length > 0, 'nothing was evicted: the test did not fill the topic')
    assert.equal(stats.dropped, evicted.length, "the topic's dropped count is the evicted count")
    assert.equal(
      stats.subscriptions[0]!.dropped,
      evicted.length,
      "the subscription's dropped count is the evicted count",
    )
    // A subscription created now gets none of the evicted, also of those evicted past messages in flight then.
    const late: string[] = []
    await sluice.subscribe(topic, 'late', (m) => void late.push(m.id))
    await eventually(
      "the late subscription's backlog",
      async () => (await sluice.stats(topic)).subscriptions.find((s) => s.subscription === 'late')!.depth === 0,
    )
    const gone = new Set(evicted)
    assert.deepEqual(
      late.filter((id) => gone.has(id)),
      [],
      'a subscription created later got evicted messages',
    )
  })
}
