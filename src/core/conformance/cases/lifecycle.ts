import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCode, SluiceError } from '../../errors.ts'
import type { ConformanceTarget } from '../target.ts'
import { deferred, eventually, publishMany, requires, supports, turns, uniqueName } from '../helpers.ts'

function code(expected: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
    assert.equal(err.code, expected, err.message)
    return true
  }
}

export function lifecycleCases(target: ConformanceTarget): void {
  test('close with drain waits for running handlers and gives prefetched messages back at once', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('drain')
    await sluice.createTopic(topic)
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 10 }, (_, i) => ({ data: i })),
    )
    const release = deferred()
    const started: number[] = []
    let finished = 0
    const subscribe = () =>
      sluice.subscribe<number>(
        topic,
        's',
        async (m) => {
          started.push(m.data)
          await release.promise
          finished++
        },
        { concurrency: 2, prefetch: 5, ordering: 'none' },
      )
    if (!(await requires(sluice, [['orderings', 'none']], subscribe))) return
    const first = await subscribe()
    await eventually(
      'two handlers running and a prefetch',
      async () => started.length === 2 && (await sluice.stats(topic)).subscriptions[0]!.inFlight === 7,
    )
    let closed = false
    const closing = first.close({ drain: true }).then(() => (closed = true))
    await turns(20)
    assert.equal(closed, false, 'close returned while handlers were running')
    // The prefetched messages went back: another consumer gets them now, as first deliveries.
    const other = await instance.connect()
    const attempts: number[] = []
    await other.subscribe<number>(topic, 's', (m) => void attempts.push(m.attempt), {
      ordering: 'none',
      concurrency: 4,
    })
    await eventually('the other consumer to get the rest', () => attempts.length === 8)
    assert.ok(
      attempts.every((a) => a === 1),
      `released messages came back as attempts ${attempts.join(',')}`,
    )
    release.resolve()
    await closing
    assert.equal(finished, 2)
    await eventually('all acknowledged', async () => (await sluice.stats(topic)).subscriptions[0]!.depth === 0)
  })

  test('for await consumes, acknowledging each message when the loop asks for the next; break releases', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('iter')
    await sluice.createTopic(topic)
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 5 }, (_, i) => ({ data: i })),
    )
    const sub = await sluice.subscribe<number>(topic, 's', { prefetch: 2 })
    const got: number[] = []
    for await (const m of sub) {
      got.push(m.data)
      if (got.length === 3) break
    }
    assert.deepEqual(got, [0, 1, 2])
    const stats = await sluice.stats(topic)
    assert.equal(stats.subscriptions[0]!.depth, 3, 'the message in hand at break was released, not acknowledged')
    assert.equal(stats.subscriptions[0]!.inFlight, 0)
    const again = await sluice.subscribe<number>(topic, 's')
    const rest: number[] = []
    for await (const m of again) {
      rest.push(m.data)
      if (rest.length === 3) break
    }
    assert.deepEqual(rest, [2, 3, 4])
  })

  test('startAt latest skips what was stored before the subscription existed; a later subscribe joins the cursor', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('latest')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'before')
    const got: unknown[] = []
    const sub = await sluice.subscribe(topic, 'new', (m) => void got.push(m.data), { startAt: 'latest' })
    await sluice.publish(topic, 'after')
    await eventually('the new message', () => got.length === 1)
    assert.deepEqual([...got], ['after'])
    await sub.close()
    await sluice.publish(topic, 'while away')
    await sluice.subscribe(topic, 'new', (m) => void got.push(m.data), { startAt: 'earliest' })
    await eventually('the message published while away', () => got.length === 2)
    assert.deepEqual(got, ['after', 'while away'])
  })

  test('what every subscription acknowledged is deleted; what one still needs is kept', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('consumed')
    await sluice.createTopic(topic, { segmentBytes: 4096 })
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 300 }, (_, i) => ({ data: { i, pad: 'x'.repeat(100) } })),
    )
    let fast = 0
    await sluice.subscribe(
      topic,
      'fast',
      () => {
        fast++
      },
      { concurrency: 8 },
    )
    const slowSub = await sluice.subscribe(topic, 'slow', { prefetch: 0 })
    await eventually('the fast subscription to finish', () => fast === 300)
    await instance.advance(10_000, 1000)
    await turns(20)
    assert.equal((await sluice.stats(topic)).partitions[0]!.startOffset, 0, "deleted what 'slow' has not read")
    let read = 0
    for await (const _m of slowSub) {
      if (++read === 300) break
    }
    // The last one was released by break; acknowledge everything through a handler.
    await sluice.subscribe(topic, 'slow', () => undefined)
    await eventually('slow to finish', async () =>
      (await sluice.stats(topic)).subscriptions.every((s) => s.depth === 0),
    )
    // The last segment goes once the topic has been quiet for a minute (sealing it costs fsyncs).
    await instance.advance(70_000, 5000)
    // No call asks for consumption retention: a runtime without it keeps what was acknowledged (to be read again).
    if (supports(sluice, 'consumptionRetention'))
      await eventually(
        'consumed data to be deleted',
        async () => (await sluice.stats(topic)).partitions[0]!.startOffset > 200,
      )
    else
      assert.equal((await sluice.stats(topic)).partitions[0]!.startOffset, 0, 'deleted without consumption retention')
  })

  test('bad subscribe calls fail with a code and a message that says what to change', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('bad')
    await sluice.createTopic(topic, { partitions: 3 })
    await assert.rejects(
      sluice.subscribe('missing-topic', 's', () => undefined),
      code(ErrorCode.TopicNotFound),
    )
    // Without global ordering at all, that is the answer (more partitions would not help); with it, the partitions.
    const global = () => sluice.subscribe(topic, 's', () => undefined, { ordering: 'global' })
    if (await requires(sluice, [['orderings', 'global']], global))
      await assert.rejects(
        global(),
        (err: SluiceError) => code(ErrorCode.InvalidArgument)(err) && /1 partition/.test(err.message),
      )
    const bad: unknown[] = [
      { ordering: 'sorted' },
      { delivery: 'twice' },
      { concurrency: 0 },
      { prefetch: -1 },
      { ackTimeoutMs: 1 },
      { maxAttempts: 0 },
      { backoff: { initialMs: -1 } },
      { backoff: { initialMs: 1000, maxMs: 10 } },
      { deadLetter: '.bad' },
      { deadLetter: topic },
      { startAt: 'middle' },
      { concurency: 4 },
      { maxLeaseMs: 10, ackTimeoutMs: 1000 },
    ]
    for (const options of bad) {
      await assert.rejects(
        sluice.subscribe(topic, 's', () => undefined, options as never),
        code(ErrorCode.InvalidArgument),
        JSON.stringify(options),
      )
    }
    await assert.rejects(
      sluice.subscribe(topic, '_reserved', () => undefined),
      code(ErrorCode.InvalidArgument),
    )
    await sluice.subscribe(topic, 'live', () => undefined, { ordering: 'key' })
    const other = () => sluice.subscribe(topic, 'live', () => undefined, { ordering: 'none' })
    if (await requires(sluice, [['orderings', 'none']], other)) await assert.rejects(other(), code(ErrorCode.Conflict))
  })
}
