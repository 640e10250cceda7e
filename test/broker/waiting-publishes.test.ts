import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import { ErrorCode, SluiceError } from '../../src/core/errors.ts'
import { Engine } from '../../src/engine/engine.ts'
import { open, type Message } from '../../src/index.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Over the broker, publishes waiting for room ('block') or for a rate slot
 * ('wait') must not hold up the rest of their connection: here more of them
 * wait than the broker handles requests at once (1,024), and the same
 * connection still gets its stats answered and its acknowledgements through,
 * which is what lets the waiting publishes in.
 */

async function startBroker(t: import('node:test').TestContext): Promise<string> {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: null })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  return `sluice://127.0.0.1:${port}`
}

test('2,000 publishes blocked on a full topic leave the connection free: stats answer, acks land, and the blocked ones get in as room appears', async (t) => {
  const url = await startBroker(t)
  const sluice = await open({ url, requestTimeoutMs: 10_000 })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('full', { limits: { maxMessages: 100, overflow: 'block' } })
  await sluice.publishBatch(
    'full',
    Array.from({ length: 100 }, (_, i) => ({ data: i })),
  )

  let settled = 0
  const blocked = Array.from({ length: 2000 }, (_, i) =>
    sluice.publish('full', 100 + i, { timeoutMs: 120_000 }).then((r) => {
      settled++
      return r
    }),
  )
  // The broker has them all (more than its 1,024 requests at once) and still answers this connection.
  const stats = await sluice.stats('full')
  assert.equal(stats.backlog, 100)
  assert.equal(settled, 0)

  // Consuming on the same connection drains the topic; every blocked publish gets in.
  const seen = new Set<number>()
  const sub = await sluice.subscribe(
    'full',
    'drain',
    (message: Message) => {
      seen.add(message.data as number)
    },
    { concurrency: 16 },
  )
  cleanup(t, () => sub.close({ drain: false, timeoutMs: 0 }))
  await Promise.all(blocked)
  await waitFor('every message consumed', () => seen.size === 2100, 60_000)
  assert.equal((await sluice.stats('full')).published, 2100)
})

test('an aborted wait is cancelled on the broker: nothing is stored once room appears', async (t) => {
  const url = await startBroker(t)
  const sluice = await open({ url, requestTimeoutMs: 10_000 })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('full', { limits: { maxMessages: 1, overflow: 'block' } })
  await sluice.publish('full', 'first')
  const controller = new AbortController()
  const aborted = sluice.publish('full', 'aborted', { signal: controller.signal })
  // Only once the broker holds the wait does the abort test the cancel (a stats round trip after the publish).
  await sluice.stats('full')
  controller.abort()
  await assert.rejects(aborted, (err: unknown) => err instanceof SluiceError && err.code === ErrorCode.Aborted)
  // Make room: an uncancelled wait would now store 'aborted'; this publish goes in instead.
  const sub = await sluice.subscribe('full', 's')
  const it = sub[Symbol.asyncIterator]()
  await ((await it.next()).value as Message).ack()
  await sluice.publish('full', 'next', { timeoutMs: 10_000 })
  const stored = await sluice.read('full', 0, 0, 10)
  assert.deepEqual(
    stored.map((m) => m.data),
    ['first', 'next'],
  )
  await sub.close()
})
