import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  capabilityNames,
  capabilityValues,
  isListCapability,
  LimitMeasure,
  RateLimitScope,
  RetentionKind,
  type Need,
} from '../../capabilities.ts'
import { ErrorCode, SluiceError } from '../../errors.ts'
import type { Message } from '../../message.ts'
import type { Sluice } from '../../sluice.ts'
import { DeliveryGuarantee, Durability, Ordering, Overflow, type TopicConfig } from '../../types.ts'
import type { ConformanceTarget } from '../target.ts'
import { assertUnsupported, requires, supports, uniqueName } from '../helpers.ts'

/** A refused createTopic left nothing behind. */
async function assertNoTopic(sluice: Sluice, topic: string): Promise<void> {
  await assert.rejects(sluice.describeTopic(topic), (err: unknown) => {
    assert.ok(err instanceof SluiceError && err.code === ErrorCode.TopicNotFound, `topic ${topic} was created`)
    return true
  })
}

/**
 * Creates a topic with `config` when the runtime has every need, and checks
 * the created topic with `check`; else asserts UNSUPPORTED and that no topic
 * was created.
 */
async function createTopicCase(
  sluice: Sluice,
  needs: readonly Need[],
  config: TopicConfig,
  check: (info: Awaited<ReturnType<Sluice['createTopic']>>) => void,
): Promise<void> {
  const topic = uniqueName('cap')
  const create = () => sluice.createTopic(topic, config)
  if (!(await requires(sluice, needs, create))) return assertNoTopic(sluice, topic)
  check(await create())
}

/**
 * Every capability and every value it may lack, at the call that asks for
 * it: what the runtime declares (`sluice.capabilities()`) is accepted; what
 * it does not is refused with UNSUPPORTED naming it, and nothing happens.
 */
export function capabilityCases(target: ConformanceTarget): void {
  test('capabilities() declares every capability, lists only known values, each once', async (t) => {
    const { sluice } = await target.open(t)
    const capabilities = sluice.capabilities()
    assert.deepEqual(Object.keys(capabilities).sort(), [...capabilityNames].sort())
    for (const name of capabilityNames) {
      const value: unknown = capabilities[name]
      if (!isListCapability(name)) {
        assert.equal(typeof value, 'boolean', `${name} is a boolean`)
        continue
      }
      assert.ok(Array.isArray(value), `${name} is a list`)
      const known: readonly unknown[] = capabilityValues[name]
      for (const v of value as unknown[]) assert.ok(known.includes(v), `${name} lists ${JSON.stringify(v)}`)
      assert.equal(new Set(value).size, value.length, `${name} lists a value twice`)
    }
  })

  for (const durability of Object.values(Durability)) {
    test(`capability durability '${durability}': createTopic asking for it succeeds, or fails with UNSUPPORTED`, async (t) => {
      const { sluice } = await target.open(t)
      await createTopicCase(sluice, [['durability', durability]], { durability }, (info) =>
        assert.equal(info.durability, durability),
      )
    })
  }

  for (const overflow of Object.values(Overflow)) {
    test(`capability overflow '${overflow}': createTopic with limits asking for it succeeds, or fails with UNSUPPORTED`, async (t) => {
      const { sluice } = await target.open(t)
      const measure = sluice.capabilities().limitBy[0] ?? LimitMeasure.MaxMessages
      await createTopicCase(
        sluice,
        [
          ['limitBy', measure],
          ['overflow', overflow],
        ],
        { limits: { [measure]: 1000, overflow } },
        (info) => assert.equal(info.limits.overflow, overflow),
      )
    })
  }

  for (const measure of Object.values(LimitMeasure)) {
    test(`capability limitBy '${measure}': createTopic with limits.${measure} succeeds, or fails with UNSUPPORTED`, async (t) => {
      const { sluice } = await target.open(t)
      const overflow = sluice.capabilities().overflow[0] ?? Overflow.Reject
      await createTopicCase(
        sluice,
        [
          ['limitBy', measure],
          ['overflow', overflow],
        ],
        { limits: { [measure]: 1000, overflow } },
        (info) => assert.equal(info.limits[measure], 1000),
      )
    })
  }

  for (const per of Object.values(RateLimitScope)) {
    test(`capability rateLimitScopes '${per}': createTopic with rateLimit.per '${per}' succeeds, or fails with UNSUPPORTED`, async (t) => {
      const { sluice } = await target.open(t)
      await createTopicCase(sluice, [['rateLimitScopes', per]], { rateLimit: { perSecond: 1000, per } }, (info) =>
        assert.equal(info.rateLimit?.per, per),
      )
    })
  }

  for (const kind of Object.values(RetentionKind)) {
    test(`capability retention '${kind}': createTopic with retention.${kind} succeeds, or fails with UNSUPPORTED`, async (t) => {
      const { sluice } = await target.open(t)
      await createTopicCase(sluice, [['retention', kind]], { retention: { [kind]: 3_600_000 } }, (info) =>
        assert.equal(info.retention[kind], 3_600_000),
      )
    })
  }

  for (const ordering of Object.values(Ordering)) {
    test(`capability orderings '${ordering}': subscribe asking for it succeeds, or fails with UNSUPPORTED`, async (t) => {
      const { sluice } = await target.open(t)
      const topic = uniqueName('cap-ordering')
      await sluice.createTopic(topic, { partitions: 1 })
      const subscribe = () => sluice.subscribe(topic, 's', { ordering, prefetch: 0 })
      if (!(await requires(sluice, [['orderings', ordering]], subscribe))) {
        assert.deepEqual((await sluice.stats(topic)).subscriptions, [], 'a refused subscribe created a subscription')
        return
      }
      const sub = await subscribe()
      assert.equal((await sluice.stats(topic)).subscriptions[0]!.ordering, ordering)
      await sub.close()
    })
  }

  for (const delivery of Object.values(DeliveryGuarantee)) {
    const needs: Need[] = [['deliveries', delivery]]
    if (delivery === DeliveryGuarantee.ExactlyOnce) needs.push('transactions')
    test(`capability deliveries '${delivery}': subscribe asking for it succeeds, or fails with UNSUPPORTED${needs.length > 1 ? ' (it needs transactions too)' : ''}`, async (t) => {
      const { sluice } = await target.open(t)
      const topic = uniqueName('cap-delivery')
      await sluice.createTopic(topic)
      const subscribe = () => sluice.subscribe(topic, 's', { delivery, prefetch: 0 })
      if (!(await requires(sluice, needs, subscribe))) {
        assert.deepEqual((await sluice.stats(topic)).subscriptions, [], 'a refused subscribe created a subscription')
        return
      }
      const sub = await subscribe()
      assert.equal((await sluice.stats(topic)).subscriptions[0]!.delivery, delivery)
      await sub.close()
    })
  }

  test('capability delayedDelivery: publish and publishBatch with delayMs or deliverAt store delayed messages, or fail with UNSUPPORTED storing nothing', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('cap-delayed')
    await sluice.createTopic(topic)
    const calls = [
      () => sluice.publish(topic, 'in a second', { delayMs: 1000 }),
      () => sluice.publish(topic, 'in a minute', { deliverAt: new Date(instance.now() + 60_000) }),
      () => sluice.publishBatch(topic, [{ data: 'now' }, { data: 'later', delayMs: 1000 }]),
    ]
    if (!supports(sluice, 'delayedDelivery')) {
      for (const call of calls) await assertUnsupported(call, ['delayedDelivery'])
      assert.equal((await sluice.stats(topic)).messages, 0, 'a refused publish stored something')
      await sluice.publish(topic, 'not delayed')
      return
    }
    for (const call of calls) await call()
    const stored = await sluice.read(topic, 0, 0, 10)
    assert.deepEqual(
      stored.map((m) => m.deliverAt !== null),
      [true, true, false, true],
    )
  })

  test('capability dedupById: a dedup window stores a repeated id once, or fails with UNSUPPORTED; a chosen id and a window of 0 are accepted everywhere', async (t) => {
    const { sluice } = await target.open(t)
    const plain = uniqueName('cap-no-dedup')
    await sluice.createTopic(plain, { dedupWindowMs: 0 })
    const chosen = await sluice.publish(plain, 'x', { id: 'chosen-1' })
    assert.equal(chosen.id, 'chosen-1')
    assert.equal((await sluice.read(plain, 0, 0, 1))[0]!.id, 'chosen-1', 'the id is stored as given')
    const topic = uniqueName('cap-dedup')
    const create = () => sluice.createTopic(topic, { dedupWindowMs: 60_000 })
    if (!(await requires(sluice, ['dedupById'], create))) return assertNoTopic(sluice, topic)
    await create()
    const first = await sluice.publish(topic, 'once', { id: 'same' })
    assert.deepEqual(await sluice.publish(topic, 'once', { id: 'same' }), { ...first, duplicate: true })
  })

  test('capability transactions: ack({ publish }) acknowledges and publishes, or fails with UNSUPPORTED leaving the message to acknowledge', async (t) => {
    const { sluice } = await target.open(t)
    const input = uniqueName('cap-tx-in')
    const output = uniqueName('cap-tx-out')
    await sluice.createTopic(input)
    await sluice.createTopic(output)
    await sluice.publish(input, 'work')
    const sub = await sluice.subscribe(input, 's', { prefetch: 0 })
    const m = (await sub[Symbol.asyncIterator]().next()).value as Message
    const commit = () => m.ack({ publish: [{ topic: output, data: 'result' }] })
    if (!(await requires(sluice, ['transactions'], commit))) {
      assert.equal((await sluice.stats(output)).messages, 0, 'a refused transaction published')
      await m.ack()
    } else assert.equal((await commit()).length, 1)
    assert.equal((await sluice.stats(input)).subscriptions[0]!.depth, 0)
    await sub.close()
  })

  test('capability peek: peek and deadLetters list without leasing, or fail with UNSUPPORTED', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('cap-peek')
    await sluice.createTopic(topic)
    await sluice.publish(topic, 'x')
    const calls = [() => sluice.peek(topic, 's'), () => sluice.deadLetters(topic)]
    if (!supports(sluice, 'peek')) {
      for (const call of calls) await assertUnsupported(call, ['peek'])
      return
    }
    assert.deepEqual(
      (await sluice.peek(topic, 's')).map((m) => m.data),
      ['x'],
    )
    assert.deepEqual(await sluice.deadLetters(topic), [])
  })
}
