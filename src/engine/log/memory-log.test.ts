import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { FakeClock } from '../../core/clock.ts'
import { numberedDraft } from '../../../test/helpers/records.ts'
import { tempDir } from '../../../test/helpers/temp-dir.ts'
import { MemoryLog } from './memory-log.ts'
import { encodedSize } from './record.ts'

test('a memory log spills past its budget, and keeps doing so after a full drain and refill', async (t) => {
  const dir = await tempDir(t)
  const budget = 64 * 1024
  const clock = new FakeClock()
  const log = new MemoryLog({ clock, budgetBytes: budget, spillDir: () => join(dir, 'spill') })
  let next = 0
  for (let cycle = 0; cycle < 3; cycle++) {
    // 200 KiB in, three times the budget: memory stays within it, the rest is on disk.
    const from = next
    for (let i = 0; i < 200; i++) await log.append([numberedDraft(next++)])
    assert.ok(log.memoryBytes <= budget, `cycle ${cycle}: ${log.memoryBytes} bytes in memory`)
    assert.equal(log.endOffset, next)
    const read = []
    while (read.length < 200) read.push(...(await log.read(from + read.length, 50)))
    assert.deepEqual(
      read.map((r) => r.offset),
      Array.from({ length: 200 }, (_, i) => from + i),
    )
    assert.ok(read.every((r, i) => r.payload[0] === (from + i) % 251))
    // Everything consumed, and a minute without appends: retention empties the spill files, then memory.
    clock.advance(61_000)
    for (let pass = 0; pass < 2; pass++) {
      await log.applyRetention({ now: clock.now(), maxAgeMs: null, maxBytes: null, consumedBefore: next })
    }
    assert.equal(log.startOffset, next)
    assert.equal(log.bytesFrom(next), 0)
  }
  await log.close()
})

test('bytesFrom never counts less than the records from an offset', async () => {
  const log = new MemoryLog({ clock: new FakeClock(), budgetBytes: Infinity })
  const drafts = Array.from({ length: 30 }, (_, i) => numberedDraft(i))
  for (let i = 0; i < 30; i += 3) await log.append(drafts.slice(i, i + 3))
  for (let offset = 0; offset <= 30; offset++) {
    const exact = drafts.slice(offset).reduce((n, d) => n + encodedSize(d), 0)
    const counted = log.bytesFrom(offset)
    assert.ok(
      counted >= exact && counted < exact + 3 * encodedSize(drafts[0]!),
      `offset ${offset}: ${counted} for ${exact}`,
    )
  }
  await log.close()
})
