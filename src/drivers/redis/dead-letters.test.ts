import assert from 'node:assert/strict'
import { test } from 'node:test'
import { redisPrefix } from '../../../test/helpers/redis-prefix.ts'

async function until(what: string, check: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 10))
  }
}

test('Redis dead letters: out of attempts by nack and by lost leases; the key goes on; headers, stats, redrive', async (t) => {
  const redis = redisPrefix(t)
  const clock = redis.clock
  const sluice = await redis.open()
  const other = await redis.open()
  await sluice.createTopic('orders')
  const payload = Buffer.from(Array.from({ length: 256 }, (_, i) => i))
  await sluice.publish('orders', payload, { key: 'k|1', headers: { 'ü|:{}': 'v\u0000|' } })
  await sluice.publish('orders', 'hang', { key: 'k|1' })
  await sluice.publish('orders', 'last', { key: 'k|1' })
  const handled: unknown[] = []
  const options = { maxAttempts: 2, ackTimeoutMs: 1000, maxLeaseMs: 1000, backoff: { initialMs: 10, maxMs: 10 } }
  const handler = async (m: { data: unknown; signal: AbortSignal }) => {
    handled.push(Buffer.isBuffer(m.data) ? 'bytes' : m.data)
    if (Buffer.isBuffer(m.data)) throw new Error('bad bytes')
    if (m.data === 'hang') {
      await new Promise<void>((r) => m.signal.addEventListener('abort', () => r(), { once: true }))
      throw new Error('gave up')
    }
  }
  await sluice.subscribe('orders', 'a', handler, options)
  await other.subscribe('orders', 'a', handler, options)
  await until('the last message after both dead letters', async () => {
    clock.advance(600)
    await new Promise((r) => setTimeout(r, 20))
    return handled.includes('last')
  })
  assert.deepEqual(handled, ['bytes', 'bytes', 'hang', 'hang', 'last'])
  await until('both dead letters', async () => (await sluice.deadLetters('orders')).length === 2)
  const dead = await sluice.deadLetters('orders')
  const first = dead[0] as unknown as { data: unknown; headers: Record<string, string>; key: string | null }
  assert.ok(Buffer.isBuffer(first.data) && first.data.equals(payload), 'the bytes survive dead-lettering')
  assert.equal(first.key, 'k|1')
  assert.equal(first.headers['ü|:{}'], 'v\u0000|')
  assert.equal(first.headers['sluice-attempts'], '2')
  assert.equal(first.headers['sluice-error'], 'bad bytes')
  const second = dead[1] as unknown as { headers: Record<string, string> }
  assert.equal(second.headers['sluice-attempts'], '2')
  assert.equal(second.headers['sluice-original-offset'], '1')
  const stats = (await sluice.stats('orders')).subscriptions.find((s) => s.subscription === 'a')!
  assert.equal(stats.deadLettered, 2)
  assert.equal(stats.acked, 1)
  assert.equal(stats.depth, 0)
  assert.equal(stats.inFlight, 0)
  assert.equal(stats.redeliveries, 2)
})
