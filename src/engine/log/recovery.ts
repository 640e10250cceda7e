import { ErrorCode, sluiceError } from '../../core/errors.ts'
import type { LogFile } from './files.ts'
import { decodeRecord, DecodeProblem, recordOverheadBytes, type LogRecord } from './record.ts'
import { SegmentIndex, type SegmentSummary } from './segment-index.ts'

/**
 * Reading a segment from start to end to find where its complete records end.
 *
 * After a crash the tail of the last segment can be torn: a record cut short,
 * a region of zeros where the OS had extended the file but not yet written
 * the data, or, after a power cut, any mix of written and unwritten sectors
 * (the disk reorders writes freely until an fsync). A log never has more than
 * `maxUnsyncedBytes` at a segment's end that were not fsynced (FileLog keeps
 * to it), so damage that close to the end is a torn tail: cut off and
 * reported. Damage further back, with valid records after it, hit data that
 * was once fsynced; recovery refuses to skip it and fails loudly.
 */

/** The most bytes at the end of a segment that may not have been fsynced, at any moment. */
export const maxUnsyncedBytes = 16 * 1024 * 1024

export interface ScanResult {
  readonly summary: SegmentSummary
  readonly index: SegmentIndex
  /** The file's size before any repair. */
  readonly fileBytes: number
  /** Bytes after the last complete record: a torn tail to cut (0 when clean). */
  readonly tornBytes: number
  /** Why the tail was judged torn, when it was. */
  readonly tornReason: string | null
}

/** The size of recovery's reads; a record bigger than this grows the buffer to the record's size. */
export const scanChunkBytes = 4 * 1024 * 1024

function isAllZero(buf: Buffer, from: number, to: number): boolean {
  for (let i = from; i < to; i++) if (buf[i] !== 0) return false
  return true
}

/** The position in `rest` (relative) of the first valid record with an offset at or above `expected`, or -1. */
function findLaterRecord(rest: Buffer, expected: number): number {
  const maxOffset = expected + Math.ceil(rest.length / recordOverheadBytes)
  for (let q = 1; q + recordOverheadBytes <= rest.length; q++) {
    const size = rest.readUInt32BE(q) + 4
    if (size < recordOverheadBytes || q + size > rest.length) continue
    const result = decodeRecord(rest, q)
    if (result.ok && result.record.offset >= expected && result.record.offset <= maxOffset) return q
  }
  return -1
}

/**
 * Scans a segment. With `tail` (the active segment), a torn end is measured
 * for the caller to cut; without it (a sealed segment, which was fsynced
 * before the next one began) any bad record is corruption. `unsyncedBytes`:
 * how much of the tail's end may be unsynced (see `maxUnsyncedBytes`).
 */
export async function scanSegment(
  file: LogFile,
  baseOffset: number,
  tail: boolean,
  onRecord?: (record: LogRecord) => void,
  unsyncedBytes = maxUnsyncedBytes,
): Promise<ScanResult> {
  const fileBytes = await file.size()
  const index = new SegmentIndex()
  let expected = baseOffset
  let lastTimestamp = 0
  let buf = Buffer.allocUnsafe(Math.min(scanChunkBytes, Math.max(fileBytes, 64)))
  let bufStart = 0 // file position of buf[0]
  let bufEnd = 0 // valid bytes in buf
  let p = 0 // file position of the next record

  /** Moves the bytes from `p` on to the front of a buffer of at least `need` bytes and reads on; false at the end of the file. */
  const fill = async (need: number): Promise<boolean> => {
    const before = bufStart + bufEnd
    const keep = before - p
    if (need > buf.length) {
      const bigger = Buffer.allocUnsafe(need)
      buf.copy(bigger, 0, p - bufStart, bufEnd)
      buf = bigger
    } else {
      buf.copy(buf, 0, p - bufStart, bufEnd)
    }
    bufStart = p
    bufEnd = keep
    while (bufEnd < buf.length && bufStart + bufEnd < fileBytes) {
      const n = await file.read(buf.subarray(bufEnd), bufStart + bufEnd)
      if (n === 0) break
      bufEnd += n
    }
    return bufStart + bufEnd > before
  }

  let problem: string | null = null
  while (p < fileBytes) {
    let result = decodeRecord(buf, p - bufStart, bufEnd)
    // Read on until the record is whole or the file ends: a record's length is known only once its
    // header is in, so a record bigger than the buffer may take one read to learn its size and one more to complete.
    while (!result.ok && result.problem === DecodeProblem.Incomplete && bufStart + bufEnd < fileBytes) {
      if (!(await fill(Math.max(buf.length, result.size)))) break
      result = decodeRecord(buf, 0, bufEnd)
    }
    if (!result.ok) {
      problem = result.problem
      break
    }
    if (result.record.offset !== expected) {
      problem = `offset ${result.record.offset} where ${expected} was expected`
      break
    }
    index.note(expected, p)
    onRecord?.(result.record)
    lastTimestamp = result.record.timestamp
    expected++
    p += result.size
  }

  const summary: SegmentSummary = { baseOffset, nextOffset: expected, logBytes: p, lastTimestamp }
  if (problem === null) return { summary, index, fileBytes, tornBytes: 0, tornReason: null }

  const damage = (why: string): never => {
    throw sluiceError(
      ErrorCode.Corrupt,
      `segment ${file.path} is damaged at byte ${p} (where offset ${expected} should start): ${why}. ` +
        `Sluice does not skip stored data: restore the file from a backup, or truncate it to ${p} bytes to drop everything after that point`,
      { details: { path: file.path, position: p, offset: expected, problem } },
    )
  }
  if (!tail) damage(`${problem} in a sealed segment`)
  if (problem === DecodeProblem.Incomplete) {
    return { summary, index, fileBytes, tornBytes: fileBytes - p, tornReason: 'the last record is incomplete' }
  }
  const rest = Buffer.allocUnsafe(fileBytes - p)
  let got = 0
  while (got < rest.length) {
    const n = await file.read(rest.subarray(got), p + got)
    if (n === 0) break
    got += n
  }
  const later = findLaterRecord(rest.subarray(0, got), expected)
  if (later < 0) {
    return {
      summary,
      index,
      fileBytes,
      tornBytes: fileBytes - p,
      tornReason: `${problem}, and no complete record follows`,
    }
  }
  if (isAllZero(rest, 0, later)) {
    // A hole of zeros is a write that never reached the disk; everything written after it was not fsynced either.
    return {
      summary,
      index,
      fileBytes,
      tornBytes: fileBytes - p,
      tornReason: `${later} bytes of zeros (an unwritten region), records after it were never fsynced`,
    }
  }
  if (fileBytes - p <= unsyncedBytes) {
    // Within what may not have been fsynced: sectors written out of order before a power cut.
    return {
      summary,
      index,
      fileBytes,
      tornBytes: fileBytes - p,
      tornReason: `${problem} ${fileBytes - p} bytes before the end, where writes may not have been fsynced (a valid record follows ${later} bytes later: sectors written out of order before a power cut)`,
    }
  }
  return damage(
    `${problem} ${fileBytes - p} bytes before the end, further back than writes are ever left unsynced (${unsyncedBytes} bytes), and a valid record follows ${later} bytes later`,
  )
}
