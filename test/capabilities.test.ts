import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  capabilitiesFromWire,
  capabilityNames,
  capabilityValues,
  checkCapabilities,
  knownRuntimes,
  type Capabilities,
} from '../src/core/capabilities.ts'
import { ErrorCode, SluiceError } from '../src/core/errors.ts'
import { Sluice } from '../src/core/sluice.ts'
import { Engine } from '../src/engine/engine.ts'
import { cleanup } from './helpers/cleanup.ts'
import { tempDir } from './helpers/temp-dir.ts'

function unsupported(capability: string, value?: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
    assert.equal(err.code, ErrorCode.Unsupported, err.message)
    assert.equal(err.details['capability'], capability, err.message)
    assert.equal(err.details['value'], value, err.message)
    return true
  }
}

const nothing: Capabilities = capabilitiesFromWire({})

test('the catalog says what the engine declares, for file: and memory:', async (t) => {
  const dir = await tempDir(t)
  const file = await Engine.open({ dir })
  cleanup(t, () => file.close())
  const memory = await Engine.open()
  cleanup(t, () => memory.close())
  const entry = (url: string): Capabilities | null | undefined => knownRuntimes.find((r) => r.url === url)?.capabilities
  assert.deepEqual(entry('file:'), file.capabilities)
  assert.deepEqual(entry('memory:'), memory.capabilities)
  assert.equal(entry('sluice://'), null, "a broker client has its broker's")
})

test('an UNSUPPORTED refusal names the capability, the value, what the runtime has and which runtimes have it', () => {
  const caps = { ...nothing, orderings: ['key', 'partition'] } as const satisfies Capabilities
  assert.throws(
    () => checkCapabilities(caps, { consumer: { ordering: 'global', delivery: 'at-least-once' } }),
    (err: SluiceError) => {
      unsupported('orderings', 'global')(err)
      assert.match(err.message, /ordering 'global'/)
      assert.match(err.message, /it has key, partition/)
      assert.match(err.message, /file:, memory:, redis:\/\/, redis\+cluster:\/\/, or sluice:\/\/ in front of one/)
      assert.deepEqual(err.details['runtimes'], ['file:', 'memory:', 'redis://', 'redis+cluster://'])
      return true
    },
  )
  assert.throws(
    () => checkCapabilities(nothing, { topic: { durability: 'fsync' } }),
    (err: SluiceError) => unsupported('durability', 'fsync')(err) && /it has none/.test(err.message),
  )
  assert.throws(() => checkCapabilities(nothing, { peek: true }), unsupported('peek'))
  assert.throws(
    () => checkCapabilities(nothing, { transaction: true }),
    (err: SluiceError) => unsupported('transactions')(err) && /file:, memory:, redis:\/\/,/.test(err.message),
  )
})

test('what each call asks for', () => {
  const all: Capabilities = {
    ...capabilityValues,
    delayedDelivery: true,
    dedupById: true,
    idempotentProducers: true,
    transactions: true,
    peek: true,
    consumptionRetention: true,
  }
  const without = (change: Partial<Capabilities>): Capabilities => ({ ...all, ...change })
  // The implied defaults count: limits without overflow ask for 'reject', a rateLimit without per for 'topic'.
  assert.throws(
    () => checkCapabilities(without({ overflow: ['block'] }), { topic: { limits: { maxMessages: 1 } } }),
    unsupported('overflow', 'reject'),
  )
  assert.throws(
    () => checkCapabilities(without({ rateLimitScopes: ['producer'] }), { topic: { rateLimit: { perSecond: 1 } } }),
    unsupported('rateLimitScopes', 'topic'),
  )
  assert.throws(
    () => checkCapabilities(without({ limitBy: ['maxMessages'] }), { topic: { limits: { maxBytes: 1 } } }),
    unsupported('limitBy', 'maxBytes'),
  )
  assert.throws(
    () => checkCapabilities(without({ retention: ['maxAgeMs'] }), { topic: { retention: { maxBytes: 1 } } }),
    unsupported('retention', 'maxBytes'),
  )
  // A dedup window asks for dedup by id; 0 (none) and the default ask nothing.
  const noDedup = without({ dedupById: false })
  assert.throws(() => checkCapabilities(noDedup, { topic: { dedupWindowMs: 1000 } }), unsupported('dedupById'))
  checkCapabilities(noDedup, { topic: { dedupWindowMs: 0 } })
  checkCapabilities(noDedup, { topic: {} })
  // Exactly-once needs transactions besides being listed.
  assert.throws(
    () =>
      checkCapabilities(without({ transactions: false }), {
        consumer: { ordering: 'key', delivery: 'exactly-once' },
      }),
    unsupported('transactions'),
  )
  // Any delay option asks for delayed delivery, also one of 0: what a program asks must not depend on the clock.
  const noDelay = without({ delayedDelivery: false })
  assert.throws(() => checkCapabilities(noDelay, { publish: { delayMs: 0 } }), unsupported('delayedDelivery'))
  assert.throws(() => checkCapabilities(noDelay, { publish: { deliverAt: 1 } }), unsupported('delayedDelivery'))
  checkCapabilities(noDelay, { publish: {} })
  for (const request of [
    { topic: { durability: 'interval', limits: { maxBytes: 5, overflow: 'drop-oldest' } } },
    { consumer: { ordering: 'none', delivery: 'exactly-once' } },
    { publish: { delayMs: 5 } },
    { transaction: true, peek: true },
  ] as const)
    checkCapabilities(all, request)
})

test('capabilities from an older broker: a missing field is absent, an unknown value is left out, nothing crashes', () => {
  const old = capabilitiesFromWire({
    durability: ['fsync', 'interval', 'memory'],
    orderings: ['none', 'key', 'partition', 'global', 'sorted'],
    deliveries: ['at-most-once', 'at-least-once'],
    delayedDelivery: true,
    peek: 'yes',
  })
  assert.deepEqual(old, {
    ...nothing,
    durability: ['fsync', 'interval', 'memory'],
    orderings: ['none', 'key', 'partition', 'global'],
    deliveries: ['at-most-once', 'at-least-once'],
    delayedDelivery: true,
  })
  for (const wire of [undefined, null, 'x', [], { orderings: 'key' }]) {
    const caps = capabilitiesFromWire(wire)
    assert.deepEqual(Object.keys(caps).sort(), [...capabilityNames].sort())
    assert.throws(() => checkCapabilities(caps, { peek: true }), unsupported('peek'))
  }
})

test("sluice.capabilities() is the driver's, and throws CLOSED once closed", async () => {
  const engine = await Engine.open()
  const sluice = new Sluice(engine)
  assert.equal(sluice.capabilities(), engine.capabilities)
  await sluice.close()
  assert.throws(
    () => sluice.capabilities(),
    (err: SluiceError) => err.code === ErrorCode.Closed,
  )
})
