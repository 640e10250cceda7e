import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Engine } from '../engine/engine.ts'
import { cleanup } from '../../test/helpers/cleanup.ts'
import type { Driver } from './driver.ts'
import { ErrorCode, SluiceError } from './errors.ts'
import { Sluice } from './sluice.ts'
import type { AppendRecord } from './types.ts'

/** A Sluice on the memory engine that counts the appends reaching it, and how many records each carried. */
async function counted(t: TestContext): Promise<{ sluice: Sluice; appends: number[] }> {
  const engine = await Engine.open({})
  const appends: number[] = []
  const append = engine.append.bind(engine)
  const driver: Driver = Object.assign(Object.create(engine) as Engine, {
    append: (topic: string, records: readonly AppendRecord[], options?: object) => {
      appends.push(records.length)
      return append(topic, records, options)
    },
  })
  const sluice = new Sluice(driver)
  cleanup(t, () => sluice.close())
  return { sluice, appends }
}

test('64 publish() calls in one turn reach the runtime as one append, each with its own receipt in order', async (t) => {
  const { sluice, appends } = await counted(t)
  await sluice.createTopic('orders')
  const receipts = await Promise.all(Array.from({ length: 64 }, (_, i) => sluice.publish('orders', i)))
  assert.deepEqual(appends, [64])
  assert.deepEqual(
    receipts.map((r) => r.offset),
    Array.from({ length: 64 }, (_, i) => i),
  )
  const stored = await sluice.read<number>('orders', 0, 0, 100)
  assert.deepEqual(
    stored.map((m) => m.data),
    Array.from({ length: 64 }, (_, i) => i),
  )
  await sluice.publish('orders', 'alone')
  assert.deepEqual(appends, [64, 1], 'a lone publish is an append of its own')
})

test('one publish that fails in a gathered append fails alone: the others are stored once each, in order', async (t) => {
  const { sluice } = await counted(t)
  await sluice.createTopic('small', { maxMessageBytes: 1000 })
  const outcomes = await Promise.allSettled(
    Array.from({ length: 10 }, (_, i) => sluice.publish('small', i === 4 ? Buffer.alloc(5000) : `m${i}`)),
  )
  const failed = outcomes.flatMap((o, i) => (o.status === 'rejected' ? [i] : []))
  assert.deepEqual(failed, [4])
  const reason = (outcomes[4] as PromiseRejectedResult).reason as SluiceError
  assert.equal(reason.code, ErrorCode.MessageTooLarge)
  const stored = await sluice.read<string>('small', 0, 0, 100)
  assert.deepEqual(
    stored.map((m) => m.data),
    ['m0', 'm1', 'm2', 'm3', 'm5', 'm6', 'm7', 'm8', 'm9'],
  )
})

test('a bound reached inside a gathered append refuses only the publishes that do not fit', async (t) => {
  const { sluice } = await counted(t)
  await sluice.createTopic('bounded', { limits: { maxMessages: 3, overflow: 'reject' } })
  const outcomes = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => sluice.publish('bounded', i)))
  assert.deepEqual(
    outcomes.map((o) => o.status),
    ['fulfilled', 'fulfilled', 'fulfilled', 'rejected', 'rejected'],
  )
  assert.ok(
    outcomes.slice(3).every((o) => ((o as PromiseRejectedResult).reason as SluiceError).code === ErrorCode.QueueFull),
  )
  assert.deepEqual(
    (await sluice.read<number>('bounded', 0, 0, 10)).map((m) => m.data),
    [0, 1, 2],
  )
})

test('publish order is log order whatever path each call takes: gathered, a batch, one with its own deadline', async (t) => {
  const { sluice } = await counted(t)
  await sluice.createTopic('ordered')
  await Promise.all([
    sluice.publish('ordered', 'a'),
    sluice.publishBatch('ordered', [{ data: 'b' }, { data: 'c' }]),
    sluice.publish('ordered', 'd', { timeoutMs: 1000 }),
    sluice.publish('ordered', 'e'),
  ])
  assert.deepEqual(
    (await sluice.read<string>('ordered', 0, 0, 10)).map((m) => m.data),
    ['a', 'b', 'c', 'd', 'e'],
  )
})

test('a buffer reused right after publish() returns is stored as it was at the call', async (t) => {
  const { sluice } = await counted(t)
  await sluice.createTopic('bytes')
  const buffer = Buffer.from('first')
  const first = sluice.publish('bytes', buffer)
  buffer.write('later')
  const second = sluice.publish('bytes', buffer)
  await Promise.all([first, second])
  assert.deepEqual(
    (await sluice.read<Buffer>('bytes', 0, 0, 10)).map((m) => m.data.toString()),
    ['first', 'later'],
  )
})

test('close() right after publish() still stores it and resolves its receipt', async (t) => {
  const engine = await Engine.open({})
  const sluice = new Sluice(engine)
  cleanup(t, () => engine.close())
  await sluice.createTopic('last')
  const receipt = sluice.publish('last', 'just before close')
  await sluice.close()
  assert.equal((await receipt).offset, 0)
})
