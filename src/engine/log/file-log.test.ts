import assert from 'node:assert/strict'
import { copyFile, mkdir, readdir, readFile, stat, truncate, unlink, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { FakeClock } from '../../core/clock.ts'
import { PayloadFormat } from '../../core/codec.ts'
import { ErrorCode, SluiceError } from '../../core/errors.ts'
import { FaultyFileSystem } from '../../../test/helpers/faulty-fs.ts'
import { tempDir } from '../../../test/helpers/temp-dir.ts'
import { FileLog, type FileLogOptions } from './file-log.ts'
import { nodeFileSystem } from './files.ts'
import { encodedSize, type RecordDraft } from './record.ts'
import { cleanup } from '../../../test/helpers/cleanup.ts'

function draft(i: number, payloadBytes = 100): RecordDraft {
  return {
    id: `m-${i}`,
    producerId: '',
    sequence: 0,
    deliverAt: 0,
    format: PayloadFormat.Bytes,
    key: i % 3 === 0 ? null : `k-${i % 7}`,
    headers: { n: String(i) },
    payload: Buffer.alloc(payloadBytes, i % 251),
  }
}

function options(dir: string, more: Partial<FileLogOptions> = {}): FileLogOptions {
  return {
    dir,
    fs: nodeFileSystem,
    clock: new FakeClock(),
    durability: 'fsync',
    fsyncIntervalMs: 100,
    segmentBytes: 64 * 1024,
    cacheBytes: 0,
    ...more,
  }
}

async function expectCorrupt(promise: Promise<unknown>): Promise<SluiceError> {
  try {
    await promise
  } catch (err) {
    assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
    assert.equal(err.code, ErrorCode.Corrupt)
    return err
  }
  assert.fail('expected CORRUPT')
}

test('appends get dense offsets and read back identically after reopen', async (t) => {
  const dir = await tempDir(t)
  const log = await FileLog.open(options(dir))
  const stored = await Promise.all(Array.from({ length: 50 }, (_, i) => log.append([draft(i)])))
  assert.deepEqual(
    stored
      .flat()
      .map((r) => r.offset)
      .sort((a, b) => a - b),
    Array.from({ length: 50 }, (_, i) => i),
  )
  await log.close()
  const again = await FileLog.open(options(dir))
  cleanup(t, () => again.close())
  assert.equal(again.recovery, null)
  assert.equal(again.endOffset, 50)
  const records = await again.read(0, 100)
  assert.deepEqual(
    records.map((r) => r.offset),
    Array.from({ length: 50 }, (_, i) => i),
  )
  for (const r of records) {
    const original = stored.flat().find((s) => s.id === r.id)!
    assert.equal(r.offset, original.offset)
    assert.deepEqual(r.headers, original.headers)
    assert.equal(r.key, original.key)
    assert.ok(Buffer.from(r.payload).equals(Buffer.from(original.payload)))
  }
})

test('appends of one tick share one write and one fsync (group commit)', async (t) => {
  const dir = await tempDir(t)
  const fs = new FaultyFileSystem()
  const log = await FileLog.open(options(dir, { fs }))
  cleanup(t, () => log.close())
  const syncsBefore = fs.syncs
  const writesBefore = fs.writes
  await Promise.all(Array.from({ length: 64 }, (_, i) => log.append([draft(i)])))
  assert.equal(fs.writes - writesBefore, 1)
  assert.equal(fs.syncs - syncsBefore, 1)
  assert.equal(log.endOffset, 64)
})

test('segments roll at segmentBytes and reads cross them in order', async (t) => {
  const dir = await tempDir(t)
  const log = await FileLog.open(options(dir, { segmentBytes: 2048 }))
  for (let i = 0; i < 100; i++) await log.append([draft(i)])
  assert.ok(log.segmentPaths.length > 5, `only ${log.segmentPaths.length} segments`)
  const files = await readdir(dir)
  assert.ok(files.includes('00000000000000000000.log'))
  assert.ok(files.includes('00000000000000000000.idx'), 'a sealed segment has its index file')
  assert.deepEqual(
    (await log.read(37, 20)).map((r) => r.offset),
    Array.from({ length: 20 }, (_, i) => 37 + i),
  )
  await log.close()
  // Missing and damaged index files are rebuilt from the log.
  await unlink(join(dir, '00000000000000000000.idx'))
  await writeFile(
    join(
      dir,
      files.find((f) => f.endsWith('.idx') && !f.startsWith('00000000000000000000'))!,
    ),
    'garbage',
  )
  const again = await FileLog.open(options(dir, { segmentBytes: 2048 }))
  cleanup(t, () => again.close())
  assert.equal(again.endOffset, 100)
  assert.deepEqual(
    (await again.read(0, 200)).map((r) => r.id),
    Array.from({ length: 100 }, (_, i) => `m-${i}`),
  )
  assert.ok((await readdir(dir)).includes('00000000000000000000.idx'))
})

test('reads use the sparse index and the cache without changing results', async (t) => {
  const dir = await tempDir(t)
  const log = await FileLog.open(options(dir, { cacheBytes: 8 * 1024 }))
  cleanup(t, () => log.close())
  for (let i = 0; i < 300; i += 10) await log.append(Array.from({ length: 10 }, (_, j) => draft(i + j)))
  for (const from of [0, 1, 41, 150, 250, 299]) {
    const got = await log.read(from, 7)
    assert.deepEqual(
      got.map((r) => r.offset),
      Array.from({ length: Math.min(7, 300 - from) }, (_, i) => from + i),
    )
    assert.deepEqual(
      got.map((r) => r.id),
      got.map((r) => `m-${r.offset}`),
    )
  }
  assert.deepEqual(await log.read(300, 10), [])
})

test('recovery cuts a torn tail at every byte of the last records back to exactly the complete ones', async (t) => {
  const dir = await tempDir(t)
  const source = join(dir, 'source')
  const log = await FileLog.open(options(source))
  const boundaries: number[] = [0]
  for (let i = 0; i < 10; i++) {
    await log.append([draft(i, 20)])
    boundaries.push((await stat(join(source, '00000000000000000000.log'))).size)
  }
  await log.close()
  const full = boundaries[boundaries.length - 1]!
  const firstCut = boundaries[boundaries.length - 4]!
  let cases = 0
  for (let cut = firstCut; cut < full; cut++) {
    const copy = join(dir, `cut-${cut}`)
    await mkdir(copy)
    await copyFile(join(source, '00000000000000000000.log'), join(copy, '00000000000000000000.log'))
    await truncate(join(copy, '00000000000000000000.log'), cut)
    const complete = boundaries.filter((b) => b <= cut).length - 1
    const recovered = await FileLog.open(options(copy))
    assert.equal(recovered.endOffset, complete, `cut at ${cut}`)
    const atBoundary = boundaries.includes(cut)
    assert.equal(
      recovered.recovery === null,
      atBoundary,
      `cut at ${cut}: reported ${JSON.stringify(recovered.recovery)}`,
    )
    if (!atBoundary) assert.equal(recovered.recovery!.cutBytes, cut - boundaries[complete]!)
    assert.deepEqual(
      (await recovered.read(0, 100)).map((r) => r.id),
      Array.from({ length: complete }, (_, i) => `m-${i}`),
    )
    // The log goes on from there.
    const [next] = await recovered.append([draft(1000, 20)])
    assert.equal(next!.offset, complete)
    await recovered.close()
    assert.equal(
      (await stat(join(copy, '00000000000000000000.log'))).size,
      boundaries[complete]! + encodedSize(draft(1000, 20)),
    )
    cases++
  }
  assert.ok(cases >= 3 * 80, `only ${cases} cut points`)
})

test('a region of zeros at the tail (written size, unwritten data) is cut as torn', async (t) => {
  const dir = await tempDir(t)
  const log = await FileLog.open(options(dir))
  const path = join(dir, '00000000000000000000.log')
  const boundaries: number[] = []
  for (let i = 0; i < 5; i++) {
    await log.append([draft(i, 50)])
    boundaries.push((await stat(path)).size)
  }
  await log.close()
  // A lost write followed by a later one that landed: zeros where record 3 was, then record 4 intact.
  const source = await readFile(path)
  const [, , third, fourth] = boundaries as [number, number, number, number, number]
  await writeFile(
    path,
    Buffer.concat([source.subarray(0, third), Buffer.alloc(fourth - third), source.subarray(fourth)]),
  )
  const recovered = await FileLog.open(options(dir))
  cleanup(t, () => recovered.close())
  assert.equal(recovered.endOffset, 3)
  assert.match(recovered.recovery!.reason, /zeros/)
})

test('flipped bytes in the tail segment, further back than writes are ever left unsynced, fail the open loudly, never skipped', async (t) => {
  const dir = await tempDir(t)
  const window = { maxUnsyncedBytes: 256 }
  const log = await FileLog.open(options(dir, window))
  for (let i = 0; i < 20; i++) await log.append([draft(i)])
  await log.close()
  const path = join(dir, '00000000000000000000.log')
  const bytes = await readFile(path)
  const middle = Math.floor(bytes.length / 2)
  bytes[middle]! ^= 0xff
  await writeFile(path, bytes)
  const err = await expectCorrupt(FileLog.open(options(dir, window)))
  assert.match(err.message, /damaged at byte \d+/)
  assert.equal(err.details['path'], path)
  assert.ok((err.details['position'] as number) <= middle)
  // Nothing was cut: the file is as it was.
  assert.equal((await stat(path)).size, bytes.length)
})

test('damage followed by valid records within the unsynced end is a torn tail (sectors written out of order before a power cut)', async (t) => {
  const dir = await tempDir(t)
  const log = await FileLog.open(options(dir))
  for (let i = 0; i < 20; i++) await log.append([draft(i)])
  await log.close()
  const path = join(dir, '00000000000000000000.log')
  const bytes = await readFile(path)
  const first = await FileLog.open(options(dir))
  const kept = (await first.read(0, 100)).length
  await first.close()
  assert.equal(kept, 20)
  // A sector in the middle never reached the disk, later ones did: its old contents (zeros) are there.
  const sector = 512 * Math.floor(bytes.length / 2 / 512)
  bytes.fill(0, sector + 100, sector + 512)
  await writeFile(path, bytes)
  const again = await FileLog.open(options(dir))
  cleanup(t, () => again.close())
  assert.match(again.recovery?.reason ?? '', /may not have been fsynced/)
  const survivors = await again.read(0, 100)
  assert.ok(survivors.length > 0 && survivors.length < 20, `${survivors.length} records kept`)
  assert.deepEqual(
    survivors.map((r) => r.id),
    survivors.map((_, i) => `m-${i}`),
  )
})

test('with interval durability the log never leaves more than maxUnsyncedBytes unsynced, whatever the timer does', async (t) => {
  const dir = await tempDir(t)
  const fs = new FaultyFileSystem()
  const log = await FileLog.open(
    options(dir, { fs, durability: 'interval', fsyncIntervalMs: 3_600_000, maxUnsyncedBytes: 4096 }),
  )
  cleanup(t, () => log.close())
  const syncsAtOpen = fs.syncs
  let written = 0
  for (let i = 0; i < 200; i++) {
    const [r] = await log.append([draft(i)])
    written += r!.payload.length
  }
  const syncs = fs.syncs - syncsAtOpen
  // About one fsync per 4 KiB written, none from the (hour-long) timer.
  assert.ok(syncs >= Math.floor(written / 4096) - 1, `${syncs} fsyncs for ${written} bytes`)
  // A batch bigger than the window is written in pieces, each fsynced before the next.
  const before = fs.syncs
  await log.append(Array.from({ length: 100 }, (_, i) => draft(1000 + i)))
  assert.ok(fs.syncs - before >= 2, 'a batch bigger than the window took one fsync')
})

test('flipped bytes in a sealed segment are reported when read, and when its index must be rebuilt', async (t) => {
  const dir = await tempDir(t)
  const log = await FileLog.open(options(dir, { segmentBytes: 2048 }))
  for (let i = 0; i < 60; i++) await log.append([draft(i)])
  await log.close()
  const path = join(dir, '00000000000000000000.log')
  const bytes = await readFile(path)
  bytes[Math.floor(bytes.length / 2)]! ^= 0x01
  await writeFile(path, bytes)
  const again = await FileLog.open(options(dir, { segmentBytes: 2048 }))
  await expectCorrupt(again.read(0, 100))
  await again.close()
  await unlink(join(dir, '00000000000000000000.idx'))
  await expectCorrupt(FileLog.open(options(dir, { segmentBytes: 2048 })))
})

test('a full disk fails the batch with STORAGE_FULL, stores nothing, and the log goes on when space returns', async (t) => {
  const dir = await tempDir(t)
  const fs = new FaultyFileSystem()
  const log = await FileLog.open(options(dir, { fs }))
  cleanup(t, () => log.close())
  await log.append([draft(0), draft(1)])
  fs.failWrites = 'ENOSPC'
  await assert.rejects(log.append([draft(2), draft(3)]), (err: SluiceError) => err.code === ErrorCode.StorageFull)
  assert.equal(log.endOffset, 2)
  fs.failWrites = null
  const [next] = await log.append([draft(4)])
  assert.equal(next!.offset, 2, 'no gap where the failed batch was')
  assert.deepEqual(
    (await log.read(0, 10)).map((r) => r.id),
    ['m-0', 'm-1', 'm-4'],
  )
  await log.close()
  const again = await FileLog.open(options(dir))
  cleanup(t, () => again.close())
  assert.deepEqual(
    (await again.read(0, 10)).map((r) => r.id),
    ['m-0', 'm-1', 'm-4'],
  )
})

test('after a failed fsync the log refuses writes, even once fsync works again', async (t) => {
  const dir = await tempDir(t)
  const fs = new FaultyFileSystem()
  const log = await FileLog.open(options(dir, { fs }))
  await log.append([draft(0)])
  fs.failSyncs = 'EIO'
  await assert.rejects(log.append([draft(1)]), (err: SluiceError) => err.code === ErrorCode.StorageFailed)
  fs.failSyncs = null
  await assert.rejects(
    log.append([draft(2)]),
    (err: SluiceError) => err.code === ErrorCode.StorageFailed && /refuses writes/.test(err.message),
  )
  await log.close()
  // Reopening reads what is really on disk and accepts writes again.
  const again = await FileLog.open(options(dir))
  cleanup(t, () => again.close())
  const [next] = await again.append([draft(3)])
  assert.equal(next!.offset, again.endOffset - 1)
  assert.equal((await again.read(0, 10))[0]!.id, 'm-0')
})

test('retention deletes whole old segments by age, by size, and by consumption', async (t) => {
  const dir = await tempDir(t)
  const clock = new FakeClock()
  const log = await FileLog.open(options(dir, { clock, segmentBytes: 2048 }))
  cleanup(t, () => log.close())
  for (let i = 0; i < 40; i++) await log.append([draft(i)])
  clock.advance(60_000)
  for (let i = 40; i < 80; i++) await log.append([draft(i)])
  const segmentsBefore = log.segmentPaths.length

  const byAge = await log.applyRetention({ now: clock.now(), maxAgeMs: 30_000, maxBytes: null, consumedBefore: null })
  assert.ok(byAge.deletedMessages > 0 && byAge.deletedMessages <= 40, `deleted ${byAge.deletedMessages}`)
  assert.equal(byAge.startOffset % 1, 0)
  assert.ok(log.segmentPaths.length < segmentsBefore)
  const first = (await log.read(0, 1))[0]!
  assert.equal(first.offset, log.startOffset, 'reads from before the start begin at the first retained offset')
  for (const path of log.segmentPaths) assert.ok((await stat(path)).size > 0 || path === log.segmentPaths.at(-1))

  const bySize = await log.applyRetention({ now: clock.now(), maxAgeMs: null, maxBytes: 4096, consumedBefore: null })
  assert.ok(bySize.deletedMessages > 0)
  assert.ok(log.bytes <= 4096 + 2048 + 200, `${log.bytes} bytes left`)

  const end = log.endOffset
  // The active segment is sealed for retention once the partition has been quiet for a minute.
  const notYet = await log.applyRetention({ now: clock.now(), maxAgeMs: null, maxBytes: null, consumedBefore: end })
  assert.ok(notYet.startOffset < end, 'an active segment being written is not sealed')
  clock.advance(61_000)
  const byConsumption = await log.applyRetention({
    now: clock.now(),
    maxAgeMs: null,
    maxBytes: null,
    consumedBefore: end,
  })
  assert.equal(byConsumption.startOffset, end, 'everything consumed is gone, the active segment sealed')
  assert.deepEqual(await log.read(0, 10), [])
  const [next] = await log.append([draft(80)])
  assert.equal(next!.offset, end)
})
