import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import type { RemoteDriver } from '../../src/client/remote-driver.ts'
import { connectDriver, startBrokerChild } from '../helpers/broker-child.ts'
import type { Child } from '../helpers/child.ts'
import { appendRecord } from '../helpers/records.ts'
import { tempDir } from '../helpers/temp-dir.ts'

/** A broker process on `dir` and a driver connected to it. */
async function startBroker(t: TestContext, dir: string): Promise<{ broker: Child; driver: RemoteDriver }> {
  const { broker, port } = await startBrokerChild(t, dir)
  return { broker, driver: await connectDriver(t, port) }
}

test('an APPEND sent again after the broker was killed -9 (same producer id and sequence) is recognised although later appends sealed its segment', async (t) => {
  const dir = await tempDir(t)
  const { broker, driver } = await startBroker(t, dir)
  await driver.createTopic('orders', { partitions: 1, segmentBytes: 1024 })
  const append = appendRecord('order-1', { producerId: 'producer-a', sequence: 7 })
  const first = await driver.append('orders', [append])
  assert.equal(first[0]!.offset, 0)
  // 100 appends of about 130 bytes in 1 KiB segments: the first is many segments back.
  for (let n = 0; n < 100; n++) {
    await driver.append('orders', [
      appendRecord(`other-${n}`, { producerId: 'producer-b', sequence: n, payload: Buffer.alloc(100) }),
    ])
  }
  await broker.kill9()
  await driver.close()
  const restarted = (await startBroker(t, dir)).driver
  const again = await restarted.append('orders', [append])
  assert.deepEqual(again, [{ ...first[0]!, duplicate: true }], 'the retry gets the first receipt, not offset 101')
  assert.equal((await restarted.read('orders', 0, 0, 1000)).length, 101, 'nothing stored twice')
})
