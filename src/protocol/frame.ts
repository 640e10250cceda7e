import { Packr } from 'msgpackr'
import { ErrorCode, sluiceError } from '../core/errors.ts'

/**
 * Frame: the unit of the broker protocol, both directions.
 *
 *   length  u32  bytes after this field (kind + id + body)
 *   kind    u8   FrameKind
 *   id      u32  request id (REQUEST/RESPONSE) or consumer id (DELIVER/LEASE_LOST/CREDIT/CONSUMER_CLOSED)
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
  /** broker -> client: a consumer the broker ended ({ code, message, details }: its subscription or topic was deleted) */
  ConsumerClosed: 9,
} as const
export type FrameKind = (typeof FrameKind)[keyof typeof FrameKind]

const kinds = new Set<number>(Object.values(FrameKind))

/**
 * 2: APPEND names its producer once and is answered with compact receipts (see wire.ts).
 * 3: CONSUMER_CLOSED tells a client at once that the broker ended one of its consumers; CLOSE_CONSUMER
 *    names the leases that reached a handler (the rest go back unstarted).
 * 4: REDRIVE runs a redrive in the broker; OPEN_CONSUMER and DELETE_SUBSCRIPTION refuse reserved
 *    subscription names (a v3 client's redrive opened `_redrive` itself, and would now be refused).
 */
export const protocolVersion = 4
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
 * Linear in the bytes pushed, however they are split (a client sending one
 * byte at a time costs a copy per byte, not a rescan of everything pending).
 */
export class FrameParser {
  private chunks: Buffer[] = []
  /** Index of the first chunk still pending (consumed chunks are dropped in bulk). */
  private head = 0
  private buffered = 0
  /** An error found after frames that were complete: returned frames first, the error on the next push. */
  private failure: Error | null = null

  /** `raise`: how the reader of a too-large frame can raise its limit, added to the error (the broker names its flag). */
  constructor(
    private readonly maxFrameBytes: number = defaultMaxFrameBytes,
    private readonly raise = '',
  ) {}

  /** Bytes held waiting for the rest of a frame. */
  get pendingBytes(): number {
    return this.buffered
  }

  /** Whether the stream has gone bad (after the frames already returned). */
  get failed(): boolean {
    return this.failure !== null
  }

  /**
   * Adds bytes; returns every frame they complete. When a bad frame follows
   * good ones, the good ones are returned and the next push (or `throwIfFailed`) throws.
   */
  push(data: Buffer): Frame[] {
    this.throwIfFailed()
    if (data.length > 0) {
      this.chunks.push(data)
      this.buffered += data.length
    }
    const frames: Frame[] = []
    try {
      for (;;) {
        if (this.buffered < 4) break
        const length = this.peekLength()
        if (length < 5) protocolError(`frame length ${length} is shorter than a frame header`)
        if (length > this.maxFrameBytes)
          protocolError(
            `frame of ${length} bytes exceeds the limit of ${this.maxFrameBytes}${this.raise === '' ? '' : `; ${this.raise}`}`,
          )
        if (this.buffered < 4 + length) break
        frames.push(decodeFrame(this.take(4 + length)))
      }
    } catch (err) {
      if (frames.length === 0) throw err
      this.failure = err instanceof Error ? err : new Error(String(err))
    }
    return frames
  }

  throwIfFailed(): void {
    if (this.failure !== null) throw this.failure
  }

  private peekLength(): number {
    const first = this.chunks[this.head]!
    if (first.length >= 4) return first.readUInt32BE(0)
    let length = 0
    let got = 0
    for (let c = this.head; got < 4; c++) {
      const chunk = this.chunks[c]!
      for (let i = 0; i < chunk.length && got < 4; i++, got++) length = length * 256 + chunk[i]!
    }
    return length
  }

  private take(bytes: number): Buffer {
    const first = this.chunks[this.head]!
    let out: Buffer
    if (first.length >= bytes) {
      out = first.subarray(0, bytes)
      if (first.length === bytes) this.head++
      else this.chunks[this.head] = first.subarray(bytes)
    } else {
      out = Buffer.allocUnsafe(bytes)
      let at = 0
      while (at < bytes) {
        const chunk = this.chunks[this.head]!
        const n = Math.min(chunk.length, bytes - at)
        chunk.copy(out, at, 0, n)
        at += n
        if (n === chunk.length) this.head++
        else this.chunks[this.head] = chunk.subarray(n)
      }
    }
    this.buffered -= bytes
    if (this.head === this.chunks.length) {
      this.chunks = []
      this.head = 0
    } else if (this.head > 1024 && this.head * 2 > this.chunks.length) {
      this.chunks = this.chunks.slice(this.head)
      this.head = 0
    }
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
