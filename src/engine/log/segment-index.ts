import { crc32c } from '@node-rs/crc32'

/**
 * A sparse offset index: one entry (offset -> file position) every
 * `intervalBytes` of log, so a read seeks near its offset and scans a few KiB.
 *
 * Index file (`.idx` beside the `.log`, rebuilt from the log when missing or bad):
 *   magic u32 'SLIX' | version u8 | baseOffset u64 | nextOffset u64 | logBytes u64
 *   | lastTimestamp u64 | entryCount u32 | entries: (offset - baseOffset u32, position u32)*
 *   | crc32c u32 of everything before it
 */

const magic = 0x534c4958
const version = 1
const headerBytes = 4 + 1 + 8 + 8 + 8 + 8 + 4

export const defaultIndexIntervalBytes = 4096

export interface SegmentSummary {
  readonly baseOffset: number
  /** One past the last record. */
  readonly nextOffset: number
  /** Bytes of complete records in the log file. */
  readonly logBytes: number
  /** Timestamp of the newest record; 0 when empty. */
  readonly lastTimestamp: number
}

function writeU64(buf: Buffer, value: number, at: number): void {
  buf.writeUInt32BE(Math.floor(value / 0x1_0000_0000), at)
  buf.writeUInt32BE(value >>> 0, at + 4)
}

function readU64(buf: Buffer, at: number): number {
  return buf.readUInt32BE(at) * 0x1_0000_0000 + buf.readUInt32BE(at + 4)
}

export class SegmentIndex {
  private offsets: number[] = []
  private positions: number[] = []

  constructor(private readonly intervalBytes: number = defaultIndexIntervalBytes) {}

  get entryCount(): number {
    return this.offsets.length
  }

  /** Notes a record at `position`; indexes it if the last entry is `intervalBytes` behind. */
  note(offset: number, position: number): void {
    const last = this.positions.length - 1
    if (last < 0 || position - this.positions[last]! >= this.intervalBytes) {
      this.offsets.push(offset)
      this.positions.push(position)
    }
  }

  /** The position of the last indexed record at or before `offset` (0: scan from the start). */
  positionFor(offset: number): number {
    let lo = 0
    let hi = this.offsets.length - 1
    let found = 0
    while (lo <= hi) {
      const mid = (lo + hi) >>> 1
      if (this.offsets[mid]! <= offset) {
        found = this.positions[mid]!
        lo = mid + 1
      } else {
        hi = mid - 1
      }
    }
    return found
  }

  encode(summary: SegmentSummary): Buffer {
    const count = this.offsets.length
    const buf = Buffer.alloc(headerBytes + count * 8 + 4)
    buf.writeUInt32BE(magic, 0)
    buf[4] = version
    writeU64(buf, summary.baseOffset, 5)
    writeU64(buf, summary.nextOffset, 13)
    writeU64(buf, summary.logBytes, 21)
    writeU64(buf, summary.lastTimestamp, 29)
    buf.writeUInt32BE(count, 37)
    for (let i = 0; i < count; i++) {
      buf.writeUInt32BE(this.offsets[i]! - summary.baseOffset, headerBytes + i * 8)
      buf.writeUInt32BE(this.positions[i]!, headerBytes + i * 8 + 4)
    }
    buf.writeUInt32BE(crc32c(buf.subarray(0, buf.length - 4)), buf.length - 4)
    return buf
  }

  /**
   * Decodes an index file; `undefined` when it is damaged, of another version,
   * or does not describe a log of `logBytes` bytes based at `baseOffset`
   * (then the caller rebuilds it from the log).
   */
  static decode(
    buf: Buffer,
    baseOffset: number,
    logBytes: number,
  ): { index: SegmentIndex; summary: SegmentSummary } | undefined {
    if (buf.length < headerBytes + 4) return undefined
    if (buf.readUInt32BE(0) !== magic || buf[4] !== version) return undefined
    if (crc32c(buf.subarray(0, buf.length - 4)) !== buf.readUInt32BE(buf.length - 4)) return undefined
    const count = buf.readUInt32BE(37)
    if (buf.length !== headerBytes + count * 8 + 4) return undefined
    const summary: SegmentSummary = {
      baseOffset: readU64(buf, 5),
      nextOffset: readU64(buf, 13),
      logBytes: readU64(buf, 21),
      lastTimestamp: readU64(buf, 29),
    }
    if (summary.baseOffset !== baseOffset || summary.logBytes !== logBytes || summary.nextOffset < baseOffset)
      return undefined
    const index = new SegmentIndex()
    for (let i = 0; i < count; i++) {
      const offset = baseOffset + buf.readUInt32BE(headerBytes + i * 8)
      const position = buf.readUInt32BE(headerBytes + i * 8 + 4)
      if (position >= logBytes || offset >= summary.nextOffset) return undefined
      if (i > 0 && (offset <= index.offsets[i - 1]! || position <= index.positions[i - 1]!)) return undefined
      index.offsets.push(offset)
      index.positions.push(position)
    }
    return { index, summary }
  }
}
