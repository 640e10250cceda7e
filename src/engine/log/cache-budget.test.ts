import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { FakeClock } from '../../core/clock.ts'
import { PayloadFormat } from '../../core/codec.ts'
import { numberedDraft } from '../../../test/helpers/records.ts'
import { tempDir } from '../../../test/helpers/temp-dir.ts'
import { cleanup } from '../../../test/helpers/cleanup.ts'
import { CacheBudget } from './cache-budget.ts'
import { FileLog } from './file-log.ts'
import { nodeFileSystem } from './files.ts'
import type { LogRecord } from './record.ts'
import { RecordCache } from './record-cache.ts'

function record(offset: number): LogRecord {
  return {
    offset,
    timestamp: offset,
    deliverAt: 0,
    producerId: '',
    sequence: 0,
    format: PayloadFormat.Bytes,
    idFromProducer: false,
    id: `m-${offset}`,
    key: null,
    headers: {},
    payload: Buffer.alloc(0),
  }
}

test('caches under one budget hold no more than it together, and the newest batches stay', () => {
  const budget = new CacheBudget(10_000)
  const caches = Array.from({ length: 50 }, () => new RecordCache(4_000, budget))
  const next = caches.map(() => 0)
  for (let round = 0; round < 20; round++) {
    for (const [i, cache] of caches.entries()) {
      cache.add([record(next[i]!), record(next[i]! + 1)], 100 + (i % 7) * 10)
      next[i]! += 2
      const total = caches.reduce((sum, c) => sum + c.bytes, 0)
      assert.equal(budget.bytes, total)
      assert.ok(total <= 10_000, `${total} bytes cached in round ${round}`)
    }
  }
  // The last batches added are those kept: every cache that still holds anything holds its newest records.
  const last = caches[caches.length - 1]!
  assert.deepEqual(
    last.read(next[next.length - 1]! - 2, 10)?.map((r) => r.offset),
    [next[next.length - 1]! - 2, next[next.length - 1]! - 1],
  )
  for (const [i, cache] of caches.entries()) {
    if (cache.endOffset !== undefined) assert.equal(cache.endOffset, next[i])
  }
  // A cache's own budget still holds: the first cache alone cannot take more than 4,000.
  for (let k = 0; k < 100; k++) caches[0]!.add([record(next[0]! + 2 * k), record(next[0]! + 2 * k + 1)], 500)
  assert.ok(caches[0]!.bytes <= 4_000)
  for (const cache of caches) cache.clear()
  assert.equal(budget.bytes, 0)
})

test('the logs of many partitions together cache no more than their shared budget, and read everything back', async (t) => {
  const dir = await tempDir(t)
  const budget = new CacheBudget(256 * 1024)
  const logs = await Promise.all(
    Array.from({ length: 32 }, (_, p) =>
      FileLog.open({
        dir: join(dir, String(p)),
        fs: nodeFileSystem,
        clock: new FakeClock(),
        durability: 'none',
        fsyncIntervalMs: 100,
        segmentBytes: 1024 * 1024,
        cacheBytes: 64 * 1024,
        cacheBudget: budget,
      }),
    ),
  )
  cleanup(t, () => Promise.all(logs.map((log) => log.close())))
  // 100 KiB per partition: each log's own cache would hold 64 KiB, 2 MiB in all without the shared budget.
  for (let batch = 0; batch < 10; batch++) {
    for (const log of logs) {
      await log.append(Array.from({ length: 10 }, (_, i) => numberedDraft(batch * 10 + i)))
      const cached = logs.reduce((sum, l) => sum + l.cachedBytes, 0)
      assert.ok(cached <= budget.budgetBytes, `${cached} bytes cached`)
      assert.equal(budget.bytes, cached)
    }
  }
  assert.ok(budget.bytes > budget.budgetBytes / 2, 'the budget is used')
  for (const log of logs) {
    const records = await log.read(0, 1000)
    assert.deepEqual(
      records.map((r) => r.id),
      Array.from({ length: 100 }, (_, i) => `m-${i}`),
    )
  }
  await Promise.all(logs.map((log) => log.close()))
  assert.equal(
    logs.reduce((sum, l) => sum + l.cachedBytes, 0),
    0,
  )
  assert.equal(budget.bytes, 0, 'closed logs give their bytes back')
})
