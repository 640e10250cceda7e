import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import fc from 'fast-check'
import { PayloadFormat } from '../../core/codec.ts'
import { limits } from '../../core/limits.ts'
import { tempDir } from '../../../test/helpers/temp-dir.ts'
import { nodeFileSystem, type LogFile } from './files.ts'
import { encodedSize, encodeRecord, type RecordDraft } from './record.ts'
import { scanChunkBytes, scanSegment } from './recovery.ts'

const chunk = scanChunkBytes

function draftOfSize(i: number, size: number): RecordDraft {
  const base: RecordDraft = {
    id: `r${i}`,
    deliverAt: 0,
    format: PayloadFormat.Bytes,
    key: null,
    headers: {},
    payload: Buffer.alloc(0),
  }
  const payloadBytes = size - encodedSize(base)
  assert.ok(payloadBytes >= 0, `a record of ${size} bytes is too small`)
  return { ...base, payload: Buffer.alloc(payloadBytes, i % 251) }
}

/** The largest record a topic can hold: a message of the ceiling size, with its id. */
const maxRecordSize = encodedSize({ ...draftOfSize(0, 100), payload: Buffer.alloc(0) }) + limits.maxMessageBytesCeiling

/**
 * Writes a segment of records of exactly `sizes` bytes, scans it as recovery does and checks that every record
 * comes back whole, in order, and that nothing is judged torn.
 */
async function scanRecordsOfSizes(t: TestContext, sizes: readonly number[], tail = true): Promise<void> {
  const path = join(await tempDir(t), `${sizes.join('-')}.log`)
  const file = await nodeFileSystem.open(path, 'create')
  try {
    await writeAndScan(file, sizes, tail)
  } finally {
    await file.close()
    await nodeFileSystem.unlink(path)
  }
}

async function writeAndScan(file: LogFile, sizes: readonly number[], tail: boolean): Promise<void> {
  let position = 0
  for (const [i, size] of sizes.entries()) {
    const buf = Buffer.allocUnsafe(size)
    encodeRecord(buf, 0, size, draftOfSize(i, size), i, 1_000 + i)
    await file.write(buf, position)
    position += size
  }
  const seen: number[] = []
  const scan = await scanSegment(file, 0, tail, (record) => {
    const i = seen.length
    assert.equal(record.offset, i)
    assert.equal(record.id, `r${i}`)
    const payloadBytes = draftOfSize(i, sizes[i]!).payload.length
    assert.equal(record.payload.length, payloadBytes, `record ${i} of ${sizes[i]} bytes`)
    if (payloadBytes > 0) {
      for (const at of [0, payloadBytes >> 1, payloadBytes - 1]) assert.equal(record.payload[at], i % 251)
    }
    seen.push(i)
  })
  const layout = `sizes ${sizes.join(', ')}`
  assert.equal(scan.tornReason, null, layout)
  assert.equal(scan.tornBytes, 0, layout)
  assert.equal(seen.length, sizes.length, layout)
  assert.equal(scan.summary.nextOffset, sizes.length, layout)
  assert.equal(scan.summary.logBytes, position, layout)
  assert.equal(scan.fileBytes, position, layout)
}

test('recovery keeps a first record of any size up to the largest a topic allows, around every read boundary', async (t) => {
  for (const size of [
    chunk - 1,
    chunk,
    chunk + 1,
    2 * chunk - 1,
    2 * chunk,
    2 * chunk + 1,
    3 * chunk + 7,
    maxRecordSize,
  ]) {
    await scanRecordsOfSizes(t, [size, 100])
  }
})

test('recovery keeps a record bigger than a read whose header straddles the end of a read', async (t) => {
  // The filler ends the first read `gap` bytes before its end: with gap < 8 not even the length is in.
  for (const gap of [1, 3, 7, 8, 9, 1000]) await scanRecordsOfSizes(t, [chunk - gap, chunk + 1, 100])
  await scanRecordsOfSizes(t, [chunk - 3, 2 * chunk + 5, 60])
  // Once a big record has grown the buffer (to chunk + 1), the next read boundary is at 2 * (chunk + 1).
  await scanRecordsOfSizes(t, [chunk + 1, chunk - 2, 2 * chunk, 100])
  await scanRecordsOfSizes(t, [100, 200, chunk - 300, 4 * chunk - 1])
})

test('recovery keeps a record at each read boundary up to the largest record, first or after another', async (t) => {
  for (let k = 1; k * chunk <= maxRecordSize; k++) {
    const size = Math.min(maxRecordSize, k * chunk + ((k % 3) - 1))
    // Odd sizes come first in the segment, even ones after a record that leaves 3 bytes of the first read.
    await scanRecordsOfSizes(t, k % 2 === 1 ? [size, 100] : [chunk - 3, size, 100])
  }
})

test('recovery of a sealed segment keeps a first record bigger than a read', async (t) => {
  await scanRecordsOfSizes(t, [chunk + 1, 100], false)
})

test('recovery keeps every complete record whatever its size and position (fuzz around read boundaries)', async (t) => {
  const small = fc.integer({ min: 60, max: 5000 })
  const nearBoundary = fc
    .tuple(fc.integer({ min: 1, max: 3 }), fc.integer({ min: -9, max: 9 }))
    .map(([k, delta]) => k * chunk + delta)
  const size = fc.oneof({ arbitrary: small, weight: 2 }, { arbitrary: nearBoundary, weight: 1 })
  await fc.assert(
    fc.asyncProperty(fc.array(size, { minLength: 1, maxLength: 4 }), (sizes) => scanRecordsOfSizes(t, sizes)),
    { numRuns: 25 },
  )
})
