import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { FakeClock } from '../../src/core/clock.ts'
import { ErrorCode, SluiceError } from '../../src/core/errors.ts'
import type { Message } from '../../src/core/message.ts'
import { Sluice } from '../../src/core/sluice.ts'
import { Engine } from '../../src/engine/engine.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { FaultyFileSystem } from '../helpers/faulty-fs.ts'
import { appendRecord } from '../helpers/records.ts'
import { tempDir } from '../helpers/temp-dir.ts'

test('an append retried after a restart (same producer id and sequence) is recognised although later appends sealed its segment', async (t) => {
  const dir = await tempDir(t)
  let engine = await Engine.open({ dir })
  cleanup(t, () => engine.close())
  await engine.createTopic('orders', { partitions: 1, segmentBytes: 1024 })
  const first = await engine.append('orders', [appendRecord('order-1', { producerId: 'p1', sequence: 0 })])
  assert.equal(first[0]!.offset, 0)
  // 100 appends of about 130 bytes in 1 KiB segments: the first is many segments back.
  for (let n = 0; n < 100; n++) {
    await engine.append('orders', [
      appendRecord(`other-${n}`, { producerId: 'p2', sequence: n, payload: Buffer.alloc(100) }),
    ])
  }
  await engine.close()
  engine = await Engine.open({ dir })
  const retried = await engine.append('orders', [appendRecord('order-1', { producerId: 'p1', sequence: 0 })])
  assert.deepEqual(retried, [{ ...first[0]!, duplicate: true }], 'the retry gets the first receipt')
  const stored = await engine.read('orders', 0, 0, 1000)
  assert.equal(stored.length, 101, 'nothing stored twice')
})

test(
  "a transaction's outputs published again at open are stored once, however long after the commit",
  { timeout: 20_000 },
  async (t) => {
    const dir = await tempDir(t)
    const clock = new FakeClock(Date.now())
    const fs = new FaultyFileSystem()
    let engine = await Engine.open({ dir, clock, fs })
    let sluice = new Sluice(engine, { clock })
    cleanup(t, async () => {
      await sluice.close({ drain: false, timeoutMs: 0 }).catch(() => undefined)
      await engine.close()
    })
    await sluice.createTopic('inputs', { partitions: 1 })
    await sluice.createTopic('results', { partitions: 1, segmentBytes: 1024 })
    await sluice.createTopic('audit', { partitions: 1 })
    await sluice.publish('inputs', 'work')
    const sub = await sluice.subscribe('inputs', 'transform', { prefetch: 0 })
    const m = (await sub[Symbol.asyncIterator]().next()).value as Message
    // The first output is stored, the second meets a failing disk: the transaction stays pending.
    fs.failUnder = join(dir, 'topics', 'audit')
    fs.failWrites = 'EIO'
    await assert.rejects(
      m.ack({
        publish: [
          { topic: 'results', data: 'result' },
          { topic: 'audit', data: 'audited' },
        ],
      }),
      (err: unknown) => err instanceof SluiceError && err.code === ErrorCode.StorageFailed,
    )
    fs.failWrites = null
    assert.deepEqual(
      (await sluice.read('results', 0, 0, 10)).map((r) => r.data),
      ['result'],
    )
    // More results seal the segment holding the output, then the engine is down for two hours.
    for (let n = 0; n < 40; n++) await sluice.publish('results', `${n}:${'x'.repeat(200)}`)
    await sub.close({ drain: false, timeoutMs: 0 })
    await sluice.close()
    await engine.close()
    clock.advance(2 * 3_600_000)
    engine = await Engine.open({ dir, clock, fs })
    sluice = new Sluice(engine, { clock })
    const results = (await sluice.read('results', 0, 0, 100)).map((r) => r.data)
    assert.equal(results.filter((d) => d === 'result').length, 1, 'the stored output is not stored again')
    assert.equal(results.length, 41)
    assert.deepEqual(
      (await sluice.read('audit', 0, 0, 10)).map((r) => r.data),
      ['audited'],
      'the output that was missing is stored at open',
    )
  },
)

// Counted in bytes, not time: the rebuild once read on into the following segments from every segment it visited
// (256 records each time), about 85 times the log with 1 KiB segments; a torture run's reopen took over 30 s.
test('rebuilding deduplication at open reads each record of many small sealed segments once', async (t) => {
  const dir = await tempDir(t)
  let engine = await Engine.open({ dir })
  cleanup(t, () => engine.close())
  await engine.createTopic('orders', { partitions: 1, segmentBytes: 1024 })
  for (let n = 0; n < 2000; n += 2) {
    await engine.append('orders', [
      appendRecord(`order-${n}`, { producerId: 'p1', sequence: n, idFromProducer: true, payload: Buffer.alloc(200) }),
      appendRecord(`order-${n + 1}`, {
        producerId: 'p1',
        sequence: n + 1,
        idFromProducer: true,
        payload: Buffer.alloc(200),
      }),
    ])
  }
  await engine.close()
  const logBytes = (await readdir(join(dir, 'topics', 'orders', '0')))
    .filter((name) => name.endsWith('.log'))
    .map((name) => statSync(join(dir, 'topics', 'orders', '0', name)).size)
    .reduce((a, b) => a + b, 0)
  const fs = new FaultyFileSystem()
  engine = await Engine.open({ dir, fs })
  t.diagnostic(`open read ${fs.bytesRead} bytes; the segments hold ${logBytes}`)
  assert.ok(fs.bytesRead < 2 * logBytes, `open read ${fs.bytesRead} bytes of segments holding ${logBytes}`)
  const again = await engine.append('orders', [appendRecord('order-0', { producerId: 'p1', sequence: 0 })])
  assert.equal(again[0]!.duplicate, true, 'and the rebuilt table knows the first append')
})
