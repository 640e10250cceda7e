import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCode, SluiceError } from '../../errors.ts'
import type { Message } from '../../message.ts'
import type { ConformanceTarget } from '../target.ts'
import {
  assertUnsupported,
  deferred,
  eventually,
  publishMany,
  requires,
  supports,
  turns,
  uniqueName,
} from '../helpers.ts'

export function atLeastOnceCases(target: ConformanceTarget): void {
  test('a throwing handler gets the message again after the backoff, not before', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('retry')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'payload')
    const attempts: { attempt: number; at: number }[] = []
    await sluice.subscribe(
      topic,
      's',
      (m) => {
        attempts.push({ attempt: m.attempt, at: instance.now() })
        if (m.attempt === 1) throw new Error('first try fails')
      },
      { backoff: { initialMs: 1000, multiplier: 2, maxMs: 10_000, jitter: 0 } },
    )
    await eventually('the first delivery', () => attempts.length === 1)
    await instance.advance(990)
    await turns(20)
    assert.equal(attempts.length, 1, 'redelivered before the backoff passed')
    await instance.advance(20)
    await eventually('the redelivery', () => attempts.length === 2)
    assert.equal(attempts[1]!.attempt, 2)
    assert.ok(attempts[1]!.at - attempts[0]!.at >= 1000)
    await eventually('the acknowledgement', async () => (await sluice.stats(topic)).subscriptions[0]!.depth === 0)
  })

  test('after maxAttempts deliveries the message goes to the dead-letter topic with its headers, and can be redriven', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('poison')
    await sluice.createTopic(topic, { partitions: 2 })
    const receipt = await sluice.publish(
      topic,
      { order: 7 },
      { key: 'user-1', id: 'order-7', headers: { trace: 't-1' } },
    )
    let deliveries = 0
    let fail = true
    const handled: number[] = []
    await sluice.subscribe(
      topic,
      'billing',
      (m) => {
        deliveries++
        handled.push(m.attempt)
        if (fail) throw new Error(`card declined (try ${m.attempt})`)
      },
      { maxAttempts: 3, backoff: { initialMs: 100, multiplier: 1, maxMs: 100, jitter: 0 } },
    )
    await eventually('the first delivery', () => deliveries === 1)
    const failed = async (): Promise<boolean> => (await sluice.stats(topic)).subscriptions[0]!.inFlight === 0
    for (let n = 2; n <= 3; n++) {
      // Time moves only once the failed delivery is back with the subscription: its backoff starts then.
      await eventually(`the failure of delivery ${n - 1}`, failed)
      await instance.advance(150)
      await eventually(`delivery ${n}`, () => deliveries === n)
    }
    const dlq = `${topic}.dlq`
    await eventually('the dead letter', async () => (await sluice.stats(topic)).subscriptions[0]!.deadLettered === 1)
    assert.equal(deliveries, 3, 'maxAttempts counts deliveries in total')
    const stats = await sluice.stats(topic)
    assert.equal(stats.subscriptions[0]!.deadLettered, 1)
    assert.equal(stats.subscriptions[0]!.depth, 0, 'a dead-lettered message is done for its subscription')
    const { partitions } = await sluice.describeTopic(dlq)
    const stored = await Promise.all(Array.from({ length: partitions }, (_, p) => sluice.read(dlq, p, 0, 10)))
    assert.deepEqual(
      stored.flat().map((m) => m.id),
      ['order-7'],
      'one copy in the dead-letter topic',
    )
    // Listing dead letters with why they died reads them without leasing them: peek.
    if (supports(sluice, 'peek')) {
      const dead = await sluice.deadLetters(topic)
      assert.equal(dead.length, 1)
      const letter = dead[0]!
      assert.equal(letter.id, 'order-7')
      assert.equal(letter.key, 'user-1')
      assert.deepEqual(letter.data, { order: 7 })
      assert.equal(letter.topic, dlq)
      assert.equal(letter.originalTopic, topic)
      assert.equal(letter.originalPartition, receipt.partition)
      assert.equal(letter.originalOffset, receipt.offset)
      assert.equal(letter.subscription, 'billing')
      assert.equal(letter.attempts, 3)
      assert.match(letter.error, /card declined \(try 3\)/)
      assert.equal(letter.headers['trace'], 't-1', 'the original headers are kept')
      assert.equal(letter.headers['sluice-original-topic'], topic)
    } else await assertUnsupported(() => sluice.deadLetters(topic), ['peek'])

    // Fixed: redrive it, and the subscription gets it again (a new copy, attempt 1).
    fail = false
    const { moved } = await sluice.redrive(topic, { ratePerSecond: 100 })
    assert.equal(moved, 1)
    await eventually('the redriven message', () => handled.length === 4)
    assert.equal(handled[3], 1)
    if (supports(sluice, 'peek'))
      assert.deepEqual(await sluice.deadLetters(topic), [], 'redriven letters are no longer listed')
    const back = await sluice.read(topic, receipt.partition, receipt.offset + 1, 10)
    assert.equal(back[0]!.id, 'order-7')
    assert.equal(back[0]!.headers['sluice-original-topic'], undefined, 'dead-letter headers are stripped')
    assert.equal(back[0]!.headers['trace'], 't-1')
  })

  test('with deadLetter false a message that runs out of attempts is dropped and counted', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('drop')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'x')
    let deliveries = 0
    await sluice.subscribe(
      topic,
      's',
      () => {
        deliveries++
        throw new Error('always')
      },
      { maxAttempts: 2, deadLetter: false, backoff: { initialMs: 10, maxMs: 10, jitter: 0 } },
    )
    await eventually('the first delivery', () => deliveries === 1)
    await instance.advance(50)
    await eventually('the drop', async () => (await sluice.stats(topic)).subscriptions[0]!.dropped === 1)
    assert.equal(deliveries, 2)
    await assert.rejects(
      sluice.describeTopic(`${topic}.dlq`),
      (err: SluiceError) => err.code === ErrorCode.TopicNotFound,
    )
  })

  test('an expired lease redelivers, the stale ack is refused and never acknowledges the newer delivery', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('lease')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'slow work')
    const first = deferred()
    const deliveries: Message[] = []
    const errors: unknown[] = []
    const stuck = await instance.connect()
    // maxLeaseMs = ackTimeoutMs: the heartbeat cannot extend, so the lease expires while the handler runs.
    await stuck.subscribe(
      topic,
      'work',
      async (m) => {
        deliveries.push(m)
        await first.promise
        await m.ack().catch((err: unknown) => errors.push(err))
      },
      { ackTimeoutMs: 1000, maxLeaseMs: 1000, prefetch: 0, backoff: { initialMs: 0, maxMs: 0 } },
    )
    await eventually('the first delivery', () => deliveries.length === 1)
    const second = deferred<'ack' | 'nack'>()
    await sluice.subscribe(
      topic,
      'work',
      async (m) => {
        deliveries.push(m)
        if ((await second.promise) === 'nack') await m.nack({ delayMs: 0 })
      },
      { ackTimeoutMs: 60_000, backoff: { initialMs: 0, maxMs: 0 } },
    )
    await instance.advance(1100)
    await eventually('the redelivery', () => deliveries.length === 2)
    assert.equal(deliveries[0]!.signal.aborted, true, 'the first handler was told its lease was lost')
    assert.equal(deliveries[1]!.attempt, 2)
    first.resolve()
    await eventually('the stale ack to be refused', () => errors.length === 1)
    assert.ok(errors[0] instanceof SluiceError)
    assert.equal(errors[0].code, ErrorCode.LeaseLost)
    // The stale ack did not acknowledge the second delivery: a nack brings the message back.
    second.resolve('nack')
    await eventually('a third delivery', () => deliveries.length >= 3)
    assert.equal(deliveries[2]!.attempt, 3)
  })

  test('a running handler keeps its lease alive past ackTimeoutMs, up to maxLeaseMs', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('heartbeat')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'long job')
    const release = deferred()
    let deliveries = 0
    let aborted = false
    await sluice.subscribe(
      topic,
      's',
      async (m) => {
        deliveries++
        m.signal.addEventListener('abort', () => (aborted = true))
        await release.promise
      },
      { ackTimeoutMs: 300, maxLeaseMs: 60_000 },
    )
    await eventually('the delivery', () => deliveries === 1)
    await instance.advance(3000)
    assert.equal(deliveries, 1, 'redelivered although the handler was still running')
    assert.equal(aborted, false)
    release.resolve()
    await eventually('the acknowledgement', async () => (await sluice.stats(topic)).subscriptions[0]!.depth === 0)
  })

  test('nack with a delay, and extend, do what they say', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('nack')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'm')
    const sub = await sluice.subscribe(topic, 's', { ackTimeoutMs: 1000, maxLeaseMs: 1000 })
    const iterator = sub[Symbol.asyncIterator]()
    const first = (await iterator.next()).value as Message
    await first.extend(500)
    await first.nack({ delayMs: 5000 })
    const next = iterator.next()
    let got = false
    void next.then(() => (got = true))
    await instance.advance(4900)
    await turns(20)
    assert.equal(got, false, 'came back before its nack delay')
    await instance.advance(200)
    const again = (await next).value as Message
    assert.equal(again.attempt, 2)
    await again.ack()
    await assert.rejects(again.extend(100), (err: SluiceError) => err.code === ErrorCode.LeaseLost)
    await sub.close()
  })

  test('a slow redrive moves each dead letter exactly once: moved is what left the dead-letter topic and what arrived, also past a lease timeout', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('slow-redrive')
    const dlq = `${topic}.dlq`
    // What is left to move is counted by listing the dead letters.
    if (!(await requires(sluice, ['peek'], () => sluice.deadLetters(topic)))) return
    await sluice.createTopic(topic)
    await sluice.createTopic(dlq)
    // 70 dead letters at 1 per second take 70 s: longer than any one lease of them should be trusted to last.
    const letters = await publishMany(
      sluice,
      dlq,
      Array.from({ length: 70 }, (_, i) => ({ data: i, headers: { 'sluice-original-topic': topic } })),
    )
    const progress = { done: false }
    const redrive = sluice.redrive(topic, { ratePerSecond: 1 }).finally(() => (progress.done = true))
    // Time moves until the redrive is done (bounded in real time): the moves take real time too (fsync, round
    // trips), so a fixed amount of fake time could run out first, leaving a lease in backoff nobody advances.
    const deadline = Date.now() + 60_000
    while (!progress.done && Date.now() < deadline) await instance.advance(1000, 250)
    const result = await redrive
    const arrived = (await sluice.read(topic, 0, 0, 1000)).map((m) => m.id)
    const left = (await sluice.deadLetters(topic, { max: 1000 })).length
    assert.equal(new Set(arrived).size, arrived.length, 'a dead letter arrived twice')
    assert.equal(result.moved, arrived.length, 'moved is what arrived in the target')
    assert.equal(result.moved, letters.length - left, 'moved is what left the dead-letter topic')
    // Whatever is left moves once more, and only it.
    const again = await sluice.redrive(topic, { ratePerSecond: 10_000 })
    assert.equal(again.moved, left)
    const all = (await sluice.read(topic, 0, 0, 1000)).map((m) => m.id)
    assert.deepEqual(all.sort(), letters.map((r) => r.id).sort(), 'every dead letter arrived exactly once')
    assert.deepEqual(await sluice.deadLetters(topic), [])
  })
}
