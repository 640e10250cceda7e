import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { Driver } from '../../src/core/driver.ts'
import { ErrorCode, SluiceError } from '../../src/core/errors.ts'
import { Engine } from '../../src/engine/engine.ts'
import { rawConsumerConfig } from '../helpers/raw-consumer.ts'
import { connectDriver, startBrokerChild } from '../helpers/broker-child.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { appendRecord } from '../helpers/records.ts'
import { tempDir } from '../helpers/temp-dir.ts'

/**
 * A transaction id names one message's commit (a repeat after a lost answer
 * gets the first outcome): another message's id must not stand in for a
 * commit of this one (before the fix it answered acked: true and this
 * message stayed unacknowledged).
 */
async function reusedIdIsRefused(driver: Driver): Promise<void> {
  await driver.createTopic('in', { partitions: 1 })
  await driver.createTopic('out', { partitions: 1 })
  await driver.append('in', [appendRecord('a'), appendRecord('b')])
  const consumer = await driver.openConsumer('in', 'work', rawConsumerConfig)
  // Over the broker the two may come in separate deliveries.
  const leased = await consumer.lease(2, new AbortController().signal)
  while (leased.length < 2) leased.push(...(await consumer.lease(2 - leased.length, new AbortController().signal)))
  const [a, b] = leased as [(typeof leased)[0], (typeof leased)[0]]
  const output = (id: string) => [{ topic: 'out', records: [appendRecord(id)] }]
  const first = await consumer.commit(a, output('from-a'), 'tx-1')
  assert.equal(first.acked, true)
  await assert.rejects(
    consumer.commit(b, output('from-b'), 'tx-1'),
    (err: unknown) => err instanceof SluiceError && err.code === ErrorCode.InvalidArgument && /tx-1/.test(err.message),
  )
  const stats = await driver.stats('in')
  assert.equal(stats.subscriptions[0]!.acked, 1, 'the refused commit acknowledged nothing')
  assert.equal((await driver.read('out', 0, 0, 10)).length, 1, 'and published nothing')
  const own = await consumer.commit(b, output('from-b'), 'tx-2')
  assert.equal(own.acked, true, 'its own id commits it')
  assert.equal((await driver.stats('in')).subscriptions[0]!.acked, 2)
  await consumer.close()
}

test("a commit that reuses another message's transaction id is refused with INVALID_ARGUMENT: embedded", async (t: TestContext) => {
  const dir = await tempDir(t)
  const engine = await Engine.open({ dir })
  cleanup(t, () => engine.close())
  await reusedIdIsRefused(engine)
})

test("a commit that reuses another message's transaction id is refused with INVALID_ARGUMENT: over the broker", async (t: TestContext) => {
  const dir = await tempDir(t)
  const { port } = await startBrokerChild(t, dir)
  const driver = await connectDriver(t, port)
  await reusedIdIsRefused(driver)
})
