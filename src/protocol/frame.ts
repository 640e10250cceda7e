import { Packr } from 'msgpackr'
import { ErrorCode, sluiceError } from '../core/errors.ts'

/**
 * Frame: the unit of the broker protocol, both directions.
 *
 *   length  u32  bytes after this field (kind + id + body)
 *   kind    u8   FrameKind
 *   id      u32  request id (REQUEST/RESPONSE) or consumer id (DELIVER/LEASE_LOST/CREDIT)
 *   body    MessagePack
 *
 * A length above the connection's maximum is rejected before anything is
 * allocated for it; any frame that does not parse closes its connection.
 */

export const FrameKind = {
  /** client -> broker: { version, client } */
  Hello: 1,
  /** broker -> client: { version, maxFrameBytes, capabilities } */
  Welcome: 2,
  /** client -> broker: [op, args] */
  Request: 3,
  /** broker -> client: [true, result] | [false, { code, message, details }] */
  Response: 4,
  /** broker -> client: leased records for a consumer, sent only against credit */
  Deliver: 5,
  /** broker -> client: leases a consumer lost */
  LeaseLost: 6,
  /** client -> broker: more deliveries a consumer may receive */
  Credit: 7,
  /** broker -> client: why the connection is being closed */
  Goodbye: 8,
} as const
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind]

const kinds = new Set<number>(Object.values(FrameKind))

export const protocolVersion = 1
export const frameHeaderBytes = 4 + 1 + 4
/** Default largest frame: a batch of appends is split below this. */
export const defaultMaxFrameBytes = 32 * 1024 * 1024

export interface Frame {
  readonly kind: FrameKind
  readonly id: number
  readonly body: unknown
}

/** Plain MessagePack (no msgpackr-only records): any MessagePack reader can read a frame. */
const packr = new Packr({ useRecords: false, mapsAsObjects: true, moreTypes: false })

export function encodeFrame(kind: FrameKind, id: number, body: unknown): Buffer {
  const packed = packr.pack(body)
  const frame = Buffer.allocUnsafe(frameHeaderBytes + packed.length)
  frame.writeUInt32BE(packed.length + 5, 0)
  frame[4] = kind
  frame.writeUInt32BE(id >>> 0, 5)
  packed.copy(frame, frameHeaderBytes)
  return frame
}

function protocolError(message: string): never {
  throw sluiceError(ErrorCode.Protocol, message)
}

/**
 * Turns a byte stream, arriving in pieces of any size, into frames. Throws
 * PROTOCOL on anything malformed; the caller then closes the connection.
 */
export class FrameParser {
  private chunks: Buffer[] = []
  private buffered = 0

  constructor(private readonly maxFrameBytes: number = defaultMaxFrameBytes) {}

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.buffered
  }

  /** Adds bytes; returns every frame they complete. */
  push(data: Buffer): Frame[] {
    if (data.length > 0) {
      this.chunks.push(data)
      this.buffered += data.length
    }
    const frames: Frame[] = []
    for (;;) {
      if (this.buffered < 4) break
      const length = this.peekLength()
      if (length < 5) protocolError(`frame length ${length} is shorter than a frame header`)
      if (length > this.maxFrameBytes)
        protocolError(`frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}`)
      if (this.buffered < 4 + length) break
      const frame = this.take(4 + length)
      frames.push(decodeFrame(frame))
    }
    return frames
  }

  private peekLength(): number {
    const first = this.chunks[0]!
    if (first.length >= 4) return first.readUInt32BE(0)
    const head = Buffer.concat(this.chunks, Math.min(4, this.buffered))
    return head.readUInt32BE(0)
  }

  private take(bytes: number): Buffer {
    const first = this.chunks[0]!
    let out: Buffer
    if (first.length >= bytes) {
      out = first.subarray(0, bytes)
      if (first.length === bytes) this.chunks.shift()
      else this.chunks[0] = first.subarray(bytes)
    } else {
      out = Buffer.allocUnsafe(bytes)
      let at = 0
      while (at < bytes) {
        const chunk = this.chunks[0]!
        const n = Math.min(chunk.length, bytes - at)
        chunk.copy(out, at, 0, n)
        at += n
        if (n === chunk.length) this.chunks.shift()
        else this.chunks[0] = chunk.subarray(n)
      }
    }
    this.buffered -= bytes
    return out
  }
}

/** Decodes one whole frame (length field included). */
export function decodeFrame(frame: Buffer): Frame {
  const kind = frame[4]!
  if (!kinds.has(kind)) protocolError(`unknown frame kind ${kind}`)
  const id = frame.readUInt32BE(5)
  let body: unknown
  try {
    body = packr.unpack(frame.subarray(frameHeaderBytes))
  } catch (err) {
    protocolError(`frame body is not valid MessagePack: ${err instanceof Error ? err.message : String(err)}`)
  }
  return { kind: kind as FrameKind, id, body }
}
