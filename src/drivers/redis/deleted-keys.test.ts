import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Redis } from 'ioredis'
import { redisPrefix } from '../../../test/helpers/redis-prefix.ts'

async function until(what: string, check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (!check()) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

async function keysOf(prefix: string): Promise<string[]> {
  const redis = new Redis()
  const out: string[] = []
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    cursor = next
    out.push(...keys)
  } while (cursor !== '0')
  redis.disconnect()
  return out.sort()
}

test('Redis: deleting a topic while a handler runs leaves no key of it behind, heartbeats included', async (t) => {
  const { clock, open: openOne, prefix } = redisPrefix(t)
  const sluice = await openOne()
  const consumerSide = await openOne()
  await sluice.createTopic('orders')
  let release = (): void => undefined
  let started = 0
  const sub = await consumerSide.subscribe(
    'orders',
    's',
    async () => {
      started++
      await new Promise<void>((r) => (release = r))
    },
    { concurrency: 1, prefetch: 0 },
  )
  await sluice.publish('orders', 'x', { key: '|a|b|\u0000{}:' })
  await until('the handler', () => started === 1)
  await sluice.deleteTopic('orders')
  clock.advance(11_000) // a heartbeat of the consumer
  await new Promise((r) => setTimeout(r, 200))
  release()
  await until('the subscription to close', () => sub.closed)
  await new Promise((r) => setTimeout(r, 200))
  assert.deepEqual(await keysOf(prefix), [])
})

test('Redis: acknowledging a message whose topic another client deleted fails with CLOSED, not LEASE_LOST', async (t) => {
  const { open: openOne } = redisPrefix(t)
  const consumerSide = await openOne()
  const admin = await openOne()
  await admin.createTopic('orders')
  await admin.publish('orders', 'one')
  const sub = await consumerSide.subscribe('orders', 's', { prefetch: 0 })
  const iterator = sub[Symbol.asyncIterator]()
  const first = await iterator.next()
  assert.equal(first.done, false)
  await admin.deleteTopic('orders')
  await admin.createTopic('orders')
  // This consumer hears of the delete only from Redis, on its next call: that call says why it ended.
  await assert.rejects(first.value.ack(), (err: { code?: string }) => err.code === 'CLOSED')
  await iterator.return?.()
})
