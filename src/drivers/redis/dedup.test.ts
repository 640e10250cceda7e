import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FakeClock } from '../../core/clock.ts'
import { redisPrefix } from '../../../test/helpers/redis-prefix.ts'

// The dedup table of a partition is two hashes used in turns (lua/append.ts): an entry written just before the turn
// is still found in the older one, and an entry counts for its window, not for as long as its hash lives.
test('Redis dedup: an id repeated across a turn of the dedup tables is still one message; past its window it is stored again', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1))
  const sluice = await redisPrefix(t, { clock }).open()
  const window = 200_000
  await sluice.createTopic('orders', { dedupWindowMs: window })
  await sluice.publish('orders', 'first', { id: 'a' }) // the tables' turn is counted from here
  clock.advance(window - 1000)
  const b = await sluice.publish('orders', 'b', { id: 'b' })
  clock.advance(2000) // past the span: the next append turns the tables, 'b' is in the older one now
  const again = await sluice.publish('orders', 'b again', { id: 'b' })
  assert.deepEqual(again, { ...b, duplicate: true }, 'a repeat 2 s later is the same message, across the turn')
  const a = await sluice.publish('orders', 'a again', { id: 'a' })
  assert.equal(a.duplicate, false, "'a' was published more than its window ago: stored again")
  clock.advance(window - 1000) // 'b' is now 201 s old, its hash not yet dropped
  const late = await sluice.publish('orders', 'b late', { id: 'b' })
  assert.equal(late.duplicate, false, 'past its window an id is a new message, wherever its entry still is')
  const stored = await sluice.read<string>('orders', 0, 0, 10)
  assert.deepEqual(
    stored.map((m) => m.data),
    ['first', 'b', 'a again', 'b late'],
  )
})
