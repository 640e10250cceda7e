import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import { FakeClock } from '../src/core/clock.ts'
import { ErrorCode, SluiceError } from '../src/core/errors.ts'
import type { SluiceOptions } from '../src/core/sluice.ts'
import { Sluice } from '../src/core/sluice.ts'
import { Engine } from '../src/engine/engine.ts'
import type { Message } from '../src/index.ts'
import { cleanup } from './helpers/cleanup.ts'

/** The producer's opt-in retry of QUEUE_FULL: capped exponential backoff with jitter, on an injected clock. */

async function setUp(t: TestContext, options: SluiceOptions): Promise<{ sluice: Sluice; clock: FakeClock }> {
  const clock = new FakeClock(Date.UTC(2026, 10, 28))
  const engine = await Engine.open({ clock })
  const sluice = new Sluice(engine, { clock, ...options })
  cleanup(t, async () => {
    await sluice.close({ drain: false, timeoutMs: 0 })
    await engine.close()
  })
  await sluice.createTopic('full', { limits: { maxMessages: 2, overflow: 'reject' } })
  await sluice.publishBatch('full', [{ data: 1 }, { data: 2 }])
  return { sluice, clock }
}

async function advance(clock: FakeClock, ms: number): Promise<void> {
  for (let i = 0; i < ms; i += 10) {
    clock.advance(10)
    await turn()
  }
}

const queueFull = (err: unknown): boolean => err instanceof SluiceError && err.code === ErrorCode.QueueFull

test('without a backpressure retry policy a full topic throws QUEUE_FULL at once', async (t) => {
  const { sluice } = await setUp(t, {})
  await assert.rejects(sluice.publish('full', 3), queueFull)
  assert.equal((await sluice.stats('full')).rejected, 1)
})

test('with backpressureRetry a publish into a full topic retries until room appears, then is stored once', async (t) => {
  const { sluice, clock } = await setUp(t, { backpressureRetry: { maxAttempts: 50, initialMs: 50, maxMs: 400 } })
  let receipt: { id: string } | null = null
  const publishing = sluice.publish('full', 3).then((r) => (receipt = r))
  await advance(clock, 2000)
  assert.equal(receipt, null, 'stored while the topic was full')
  // Each wait honours the refusal's retryAfterMs (1 s while nothing drains) over the shorter backoff:
  // 2 s of fake time hold 2 or 3 attempts, not 2000 / 50.
  const refusals = (await sluice.stats('full')).rejected
  assert.ok(refusals >= 2 && refusals <= 3, `${refusals} attempts in 2 s`)
  const sub = await sluice.subscribe('full', 'reader', { prefetch: 0 })
  const it = sub[Symbol.asyncIterator]()
  await ((await it.next()).value as Message).ack()
  await advance(clock, 500)
  await publishing
  assert.deepEqual(receipt, { id: receipt!.id, partition: 0, offset: 2, duplicate: false })
  const stored = await sluice.read('full', 0, 0, 10)
  assert.deepEqual(
    stored.map((m) => m.data),
    [1, 2, 3],
  )
  await sub.close()
})

test('backpressureRetry gives up after maxAttempts with the last QUEUE_FULL', async (t) => {
  const { sluice, clock } = await setUp(t, { backpressureRetry: { maxAttempts: 3, initialMs: 50, maxMs: 100 } })
  const publishing = assert.rejects(sluice.publish('full', 3), queueFull)
  await advance(clock, 3000)
  await publishing
  assert.equal((await sluice.stats('full')).rejected, 3)
})
