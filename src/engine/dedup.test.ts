import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { AppendRecord } from '../core/types.ts'
import { cleanup } from '../../test/helpers/cleanup.ts'
import { tempDir } from '../../test/helpers/temp-dir.ts'
import { appendRecord } from '../../test/helpers/records.ts'
import { Engine } from './engine.ts'

function record(id: string, sequence: number, producerId = 'producer-1'): AppendRecord {
  return appendRecord(id, { producerId, sequence })
}

test('an append retried with the same producer id and sequence is stored once and answered with the first receipt', async (t) => {
  const engine = await Engine.open({ dir: await tempDir(t) })
  cleanup(t, () => engine.close())
  await engine.createTopic('events', { partitions: 3 })
  const [first] = await engine.append('events', [record('a', 1)])
  // The retry arrives while the first is still being stored, and again after.
  const [during, after] = await Promise.all([
    engine.append('events', [record('a', 1)]),
    engine.append('events', [record('a', 1)]),
  ])
  for (const retry of [during[0]!, after[0]!]) {
    assert.deepEqual(retry, { ...first!, duplicate: true })
  }
  const [other] = await engine.append('events', [record('b', 2)])
  assert.equal(other!.duplicate, false)
  const [otherProducer] = await engine.append('events', [record('a', 1, 'producer-2')])
  assert.equal(otherProducer!.duplicate, false, 'sequences belong to one producer')
  let stored = 0
  for (let p = 0; p < 3; p++) stored += (await engine.read('events', p, 0, 100)).length
  assert.equal(stored, 3)
})

test('a mixed batch stores only the records not seen before, receipts in order', async (t) => {
  const engine = await Engine.open({})
  cleanup(t, () => engine.close())
  await engine.createTopic('events', {})
  await engine.append('events', [record('a', 1), record('b', 2)])
  const receipts = await engine.append('events', [record('b', 2), record('c', 3), record('a', 1)])
  assert.deepEqual(
    receipts.map((r) => [r.id, r.offset, r.duplicate]),
    [
      ['b', 1, true],
      ['c', 2, false],
      ['a', 0, true],
    ],
  )
})

test('after a restart, retries of appends from before it are still recognised', async (t) => {
  const dir = await tempDir(t)
  let engine = await Engine.open({ dir })
  await engine.createTopic('events', { partitions: 2 })
  const before = await engine.append('events', [record('a', 7), record('b', 8)])
  await engine.close()
  engine = await Engine.open({ dir })
  cleanup(t, () => engine.close())
  const retried = await engine.append('events', [record('a', 7), record('b', 8)])
  assert.deepEqual(
    retried,
    before.map((r) => ({ ...r, duplicate: true })),
  )
})
