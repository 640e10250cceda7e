import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FakeClock } from '../../core/clock.ts'
import { cleanup } from '../../../test/helpers/cleanup.ts'
import { appendRecord } from '../../../test/helpers/records.ts'
import { redisPrefix } from '../../../test/helpers/redis-prefix.ts'
import { openDriver } from '../../open.ts'

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

// A producer's sequences are kept as one field per 64 of them (lua/append.ts): a retry is recognised however the
// retried records are grouped with others, on either side of a field's boundary, and until the tables turn twice.
test('Redis dedup: a retried producer sequence gets its first receipt, across fields of 64, mixed with new records and across a turn', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 0, 1))
  const { url } = redisPrefix(t, { clock })
  const driver = await openDriver(url, { clock })
  cleanup(t, () => driver.close())
  await driver.createTopic('orders', { partitions: 1 })
  const record = (producerId: string, sequence: number) =>
    appendRecord(`${producerId}-${sequence}`, { producerId, sequence })
  const range = (from: number, to: number) => Array.from({ length: to - from }, (_, i) => from + i)
  const first = await driver.append(
    'orders',
    range(0, 100).map((n) => record('p1', n)),
  )
  assert.deepEqual(
    first.map((r) => [r.offset, r.duplicate]),
    range(0, 100).map((n) => [n, false]),
  )
  const retried = await driver.append(
    'orders',
    [...range(50, 80), ...range(100, 110)].map((n) => record('p1', n)),
  )
  assert.deepEqual(
    retried.map((r) => [r.offset, r.duplicate]),
    [...range(50, 80).map((n) => [n, true]), ...range(0, 10).map((n) => [100 + n, false])],
    'sequences 50-79 (across the boundary at 64) are the first copies; 100-109 are new',
  )
  const twice = await driver.append('orders', [record('p1', 200), record('p1', 200)])
  assert.deepEqual(twice[1], { ...twice[0]!, duplicate: true }, 'a repeat within one append')
  const other = await driver.append('orders', [record('p2', 50)])
  assert.equal(other[0]!.duplicate, false, "another producer's sequence 50 is its own")
  clock.advance(121_000) // past the span: the next append turns the tables; p1's fields are in the older one
  await driver.append('orders', [record('p3', 0)])
  const afterTurn = await driver.append('orders', [record('p1', 70), record('p1', 105)])
  assert.deepEqual(
    afterTurn.map((r) => [r.offset, r.duplicate]),
    [
      [70, true],
      [105, true],
    ],
    'still recognised from the older table',
  )
  clock.advance(121_000) // the older table is dropped at the next turn
  await driver.append('orders', [record('p3', 1)])
  const forgotten = await driver.append('orders', [record('p1', 1)])
  assert.equal(forgotten[0]!.duplicate, false, 'two spans on, a sequence is forgotten: the table stays bounded')
  const stored = await driver.read('orders', 0, 0, 1000)
  assert.equal(stored.length, 100 + 10 + 1 + 1 + 1 + 1 + 1, 'nothing else was stored')
})
