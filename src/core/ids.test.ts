import assert from 'node:assert/strict'
import { test } from 'node:test'
import { uuidv7 } from './ids.ts'

const shape = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/

test('ids are UUIDv7 carrying the millisecond they were made in', () => {
  const now = Date.UTC(2026, 10, 27, 12, 0, 0, 123)
  const id = uuidv7(now)
  assert.match(id, shape)
  assert.equal(parseInt(id.slice(0, 8) + id.slice(9, 13), 16), now)
})

test('ids made in one process sort in the order they were made, also within a millisecond', () => {
  const ids = Array.from({ length: 20_000 }, () => uuidv7(1_800_000_000_000))
  for (const id of ids) assert.match(id, shape)
  assert.deepEqual([...ids].sort(), ids)
  assert.equal(new Set(ids).size, ids.length)
})
