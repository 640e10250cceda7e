import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import { RemoteDriver } from '../../src/client/remote-driver.ts'
import { capabilitiesFromWire, type Capabilities } from '../../src/core/capabilities.ts'
import { PayloadFormat } from '../../src/core/codec.ts'
import { driverView } from '../../src/core/conformance/shared-driver.ts'
import { ErrorCode, SluiceError } from '../../src/core/errors.ts'
import { Sluice } from '../../src/core/sluice.ts'
import { checkSubscribeOptions } from '../../src/core/subscribe-options.ts'
import type { AppendRecord } from '../../src/core/types.ts'
import { Engine } from '../../src/engine/engine.ts'
import { cleanup } from '../helpers/cleanup.ts'

/**
 * A broker in front of a runtime that lacks capabilities: its clients learn
 * what it has from WELCOME, and a client that is not a Sluice (so checks
 * nothing itself) is refused by the broker with the same UNSUPPORTED.
 */

function unsupported(capability: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SluiceError, `expected UNSUPPORTED, got ${String(err)}`)
    assert.equal(err.code, ErrorCode.Unsupported, err.message)
    assert.equal(err.details['capability'], capability, err.message)
    return true
  }
}

const few: Capabilities = {
  durability: ['memory'],
  orderings: ['key'],
  deliveries: ['at-least-once'],
  delayedDelivery: false,
  overflow: [],
  limitBy: [],
  rateLimitScopes: [],
  dedupById: false,
  idempotentProducers: false,
  transactions: false,
  peek: false,
  consumptionRetention: true,
  retention: [],
}

/** A broker on a memory engine whose driver declares `capabilities`, and a raw driver connected to it. */
async function brokerWith(t: TestContext, capabilities: unknown): Promise<RemoteDriver> {
  const engine = await Engine.open()
  const broker = new Broker(driverView(engine, { capabilities: capabilities as Capabilities }), {
    port: 0,
    httpPort: null,
  })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  const driver = await RemoteDriver.connect({
    host: '127.0.0.1',
    port,
    connectTimeoutMs: 5000,
    requestTimeoutMs: 10_000,
  })
  cleanup(t, () => driver.close())
  return driver
}

function record(deliverAt = 0): AppendRecord {
  return { id: 'm', key: null, headers: {}, payload: new Uint8Array([1]), format: PayloadFormat.Bytes, deliverAt }
}

test("a client sees the broker's runtime's capabilities, every field", async (t) => {
  const driver = await brokerWith(t, few)
  assert.deepEqual(driver.capabilities, few)
  const sluice = new Sluice(driver)
  assert.deepEqual(sluice.capabilities(), few)
})

test('the broker refuses what its runtime lacks to a client that checks nothing itself', async (t) => {
  const driver = await brokerWith(t, few)
  await assert.rejects(
    driver.createTopic('capped', { limits: { maxMessages: 10, overflow: 'block' } }),
    unsupported('limitBy'),
  )
  await assert.rejects(driver.createTopic('durable', { durability: 'fsync' }), unsupported('durability'))
  await assert.rejects(driver.createTopic('kept', { retention: { maxAgeMs: 1000 } }), unsupported('retention'))
  await assert.rejects(driver.createTopic('dedup', { dedupWindowMs: 1000 }), unsupported('dedupById'))
  await assert.rejects(driver.describeTopic('capped'), (err: SluiceError) => err.code === ErrorCode.TopicNotFound)
  await driver.createTopic('t', {})
  await assert.rejects(driver.append('t', [record(Date.now() + 60_000)]), unsupported('delayedDelivery'))
  assert.equal((await driver.stats('t')).messages, 0, 'a refused append stored nothing')
  await driver.append('t', [record()])
  await assert.rejects(driver.peek('t', 's', 10), unsupported('peek'))
  await assert.rejects(
    driver.openConsumer('t', 's', checkSubscribeOptions('t', { ordering: 'global' }).config),
    unsupported('orderings'),
  )
  const consumer = await driver.openConsumer('t', 's', checkSubscribeOptions('t', {}).config)
  const [leased] = await consumer.lease(1, AbortSignal.timeout(5000))
  assert.ok(leased !== undefined)
  await assert.rejects(
    consumer.commit(leased, [{ topic: 't', records: [record()] }], 'tx-1'),
    unsupported('transactions'),
  )
  assert.deepEqual(await consumer.ack([leased]), [true], 'the refused commit left the lease alone')
  await consumer.close()
})

test('an older broker that declares fewer fields: the missing ones count as absent, and nothing crashes', async (t) => {
  const older = {
    durability: ['memory'],
    orderings: ['none', 'key', 'partition', 'global'],
    deliveries: ['at-most-once', 'at-least-once'],
    delayedDelivery: true,
  }
  const driver = await brokerWith(t, older)
  const sluice = new Sluice(driver)
  assert.deepEqual(sluice.capabilities(), capabilitiesFromWire(older))
  assert.equal(sluice.capabilities().peek, false)
  await sluice.createTopic('t')
  await sluice.publish('t', 'x', { delayMs: 10 })
  await assert.rejects(sluice.peek('t', 's'), unsupported('peek'))
  await assert.rejects(sluice.createTopic('u', { rateLimit: { perSecond: 5 } }), unsupported('rateLimitScopes'))
})
