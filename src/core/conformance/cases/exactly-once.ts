import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCode, SluiceError } from '../../errors.ts'
import type { Message } from '../../message.ts'
import type { ConformanceTarget } from '../target.ts'
import { eventually, publishMany, requires, uniqueName } from '../helpers.ts'

export function exactlyOnceCases(target: ConformanceTarget): void {
  test('the same message id published twice within the dedup window is stored once; after the window it is stored again', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const topic = uniqueName('dedup')
    const create = () => sluice.createTopic(topic, { partitions: 3, dedupWindowMs: 60_000 })
    if (!(await requires(sluice, ['dedupById'], create))) return
    await create()
    const first = await sluice.publish(topic, { charge: 1 }, { id: 'payment-1', key: 'user-1' })
    assert.equal(first.duplicate, false)
    const again = await sluice.publish(topic, { charge: 1 }, { id: 'payment-1', key: 'user-1' })
    assert.deepEqual(again, { ...first, duplicate: true }, 'the repeat gets the first receipt')
    const fromOther = await (await instance.connect()).publish(topic, { charge: 1 }, { id: 'payment-1', key: 'user-1' })
    assert.deepEqual(fromOther, { ...first, duplicate: true }, 'also from another client')
    const inBatch = await sluice.publishBatch(topic, [
      { data: 2, id: 'payment-2', key: 'user-2' },
      { data: 2, id: 'payment-2', key: 'user-2' },
    ])
    assert.equal(inBatch[0]!.duplicate, false)
    assert.deepEqual(inBatch[1], { ...inBatch[0]!, duplicate: true }, 'a repeat within one batch')
    const generated = await Promise.all([sluice.publish(topic, 'x'), sluice.publish(topic, 'x')])
    assert.ok(
      generated.every((r) => !r.duplicate),
      'generated ids are never duplicates of each other',
    )
    await instance.advance(61_000, 1000)
    const later = await sluice.publish(topic, { charge: 1 }, { id: 'payment-1', key: 'user-1' })
    assert.equal(later.duplicate, false, 'after the window the id is new again')
    assert.equal(later.partition, first.partition)
    assert.ok(later.offset > first.offset, 'stored again, at a new offset')
  })

  test('deduplication by id holds across a restart', async (t) => {
    const instance = await target.open(t)
    if (instance.restart === undefined) return t.skip(`${target.name} keeps nothing across a restart`)
    let sluice = instance.sluice
    const topic = uniqueName('dedup-restart')
    const create = () => sluice.createTopic(topic, { partitions: 2, dedupWindowMs: 120_000 })
    if (!(await requires(sluice, ['dedupById'], create))) return
    await create()
    const first = await sluice.publish(topic, 'once', { id: 'order-9' })
    sluice = await instance.restart()
    const again = await sluice.publish(topic, 'once', { id: 'order-9' })
    assert.deepEqual(again, { ...first, duplicate: true })
  })

  test('deduplication by id holds across a restart also when later traffic has sealed the segment holding the first copy', async (t) => {
    const instance = await target.open(t)
    if (instance.restart === undefined) return t.skip(`${target.name} keeps nothing across a restart`)
    let sluice = instance.sluice
    const topic = uniqueName('dedup-sealed')
    const create = () => sluice.createTopic(topic, { partitions: 1, segmentBytes: 1024, dedupWindowMs: 120_000 })
    if (!(await requires(sluice, ['dedupById'], create))) return
    await create()
    const first = await sluice.publish(topic, 'once', { id: 'order-42' })
    // About 8 KiB after it in 1 KiB segments: the first copy is several segments back.
    await publishMany(
      sluice,
      topic,
      Array.from({ length: 40 }, (_, i) => ({ data: `${i}:${'x'.repeat(200)}` })),
    )
    sluice = await instance.restart()
    await instance.advance(60_000, 1000)
    const again = await sluice.publish(topic, 'once', { id: 'order-42' })
    assert.deepEqual(again, { ...first, duplicate: true }, 'the repeat within the window gets the first receipt')
    const stored = await sluice.read(topic, 0, 0, 100)
    assert.equal(stored.filter((m) => m.id === 'order-42').length, 1, 'stored once')
  })

  test('dedupWindowMs 0 turns deduplication by id off', async (t) => {
    const { sluice } = await target.open(t)
    const topic = uniqueName('nodedup')
    await sluice.createTopic(topic, { dedupWindowMs: 0 })
    const a = await sluice.publish(topic, 'a', { id: 'same' })
    const b = await sluice.publish(topic, 'a', { id: 'same' })
    assert.equal(b.duplicate, false)
    assert.equal(b.offset, a.offset + 1)
  })
}

export function transactionCases(target: ConformanceTarget): void {
  test("a committed transaction's outputs are stored even into a full topic: refusing them after the ack would lose them", async (t) => {
    const { sluice } = await target.open(t)
    const input = uniqueName('tx-in')
    const output = uniqueName('tx-full')
    await sluice.createTopic(input, { partitions: 1 })
    const bounded = () => sluice.createTopic(output, { partitions: 1, limits: { maxMessages: 1 } })
    if (
      !(await requires(
        sluice,
        [
          ['limitBy', 'maxMessages'],
          ['overflow', 'reject'],
        ],
        bounded,
      ))
    )
      return
    await bounded()
    await sluice.publish(output, 'fills it')
    await sluice.publish(input, 'work')
    const sub = await sluice.subscribe(input, 'transform', { prefetch: 0 })
    const it = sub[Symbol.asyncIterator]()
    const m = (await it.next()).value as Message
    const commit = () => m.ack({ publish: [{ topic: output, data: 'result' }] })
    if (!(await requires(sluice, ['transactions'], commit))) return
    const published = await commit()
    assert.equal(published.length, 1)
    const stored = await sluice.read(output, 0, 0, 10)
    assert.deepEqual(
      stored.map((r) => r.data),
      ['fills it', 'result'],
    )
    await sub.close()
  })

  test('ack({ publish }) acknowledges and publishes in one step; the outputs carry their own receipts', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const input = uniqueName('tx-in')
    const output = uniqueName('tx-out')
    await sluice.createTopic(input, { partitions: 2 })
    await sluice.createTopic(output, { partitions: 3 })
    await sluice.publishBatch(
      input,
      Array.from({ length: 20 }, (_, i) => ({ data: i, key: `k${i}` })),
    )
    const receipts: unknown[] = []
    const subscribe = () =>
      sluice.subscribe<number>(
        input,
        'transform',
        async (m) => {
          const published = await m.ack({
            publish: [
              { topic: output, data: { doubled: m.data * 2, from: m.id }, key: m.key },
              { topic: output, data: { tripled: m.data * 3, from: m.id }, key: m.key },
            ],
          })
          receipts.push(...published)
        },
        { delivery: 'exactly-once', concurrency: 4 },
      )
    if (!(await requires(sluice, [['deliveries', 'exactly-once'], 'transactions'], subscribe))) return
    await subscribe()
    await eventually('every input transformed', () => receipts.length === 40)
    const stats = await sluice.stats(input)
    assert.equal(stats.subscriptions[0]!.depth, 0)
    const out = await sluice.stats(output)
    assert.equal(out.messages, 40)
    const all = (await Promise.all([0, 1, 2].map((p) => sluice.read<{ from: string }>(output, p, 0, 100)))).flat()
    const perInput = new Map<string, number>()
    for (const m of all) perInput.set(m.data.from, (perInput.get(m.data.from) ?? 0) + 1)
    assert.equal(perInput.size, 20)
    assert.ok([...perInput.values()].every((n) => n === 2))
  })

  test('a transaction from a lost lease is refused: nothing acknowledged, nothing published', async (t) => {
    const instance = await target.open(t)
    const { sluice } = instance
    const input = uniqueName('tx-lost-in')
    const output = uniqueName('tx-lost-out')
    await sluice.createTopic(input)
    await sluice.createTopic(output)
    await sluice.publish(input, 'slow')
    const sub = await sluice.subscribe(input, 's', {
      ackTimeoutMs: 1000,
      maxLeaseMs: 1000,
      prefetch: 0,
      backoff: { initialMs: 60_000, maxMs: 60_000 },
    })
    const first = (await sub[Symbol.asyncIterator]().next()).value as import('../../message.ts').Message
    await instance.advance(1500)
    const commit = () => first.ack({ publish: [{ topic: output, data: 'result' }] })
    if (!(await requires(sluice, ['transactions'], commit))) return
    await assert.rejects(commit(), (err: SluiceError) => err.code === ErrorCode.LeaseLost)
    assert.equal((await sluice.stats(output)).messages, 0, 'nothing published')
    assert.equal((await sluice.stats(input)).subscriptions[0]!.depth, 1, 'nothing acknowledged')
  })

  test('a transaction to an unknown topic fails before anything happens', async (t) => {
    const { sluice } = await target.open(t)
    const input = uniqueName('tx-bad-in')
    await sluice.createTopic(input)
    await sluice.publish(input, 'x')
    const sub = await sluice.subscribe(input, 's')
    const m = (await sub[Symbol.asyncIterator]().next()).value as import('../../message.ts').Message
    const missing = () => m.ack({ publish: [{ topic: uniqueName('missing'), data: 1 }] })
    if (!(await requires(sluice, ['transactions'], missing))) return
    await assert.rejects(missing(), (err: SluiceError) => err.code === ErrorCode.TopicNotFound)
    await assert.rejects(
      m.ack({ publish: [{ topic: '.bad', data: 1 }] }),
      (err: SluiceError) => err.code === ErrorCode.InvalidArgument,
    )
    assert.equal((await sluice.stats(input)).subscriptions[0]!.depth, 1)
    await m.ack()
    await eventually('the plain ack', async () => (await sluice.stats(input)).subscriptions[0]!.depth === 0)
  })
}
