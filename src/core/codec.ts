import { ErrorCode, sluiceError } from './errors.ts'

/**
 * Payload codecs. A stored payload carries its format, so any reader can
 * decode it: raw bytes stay bytes, JSON is parsed, and a custom format is
 * handed to the reader's codec (or returned as bytes when it has none).
 */
export const PayloadFormat = { Bytes: 0, Json: 1, Custom: 2 } as const
export type PayloadFormat = (typeof PayloadFormat)[keyof typeof PayloadFormat]

/** A user codec, e.g. MessagePack or protobuf. Used for every payload when given to `open()`. */
export interface Codec {
  encode(value: unknown): Uint8Array
  decode(bytes: Uint8Array): unknown
}

export interface EncodedPayload {
  readonly payload: Buffer
  readonly format: PayloadFormat
}

export function isPayloadFormat(value: number): value is PayloadFormat {
  return value === PayloadFormat.Bytes || value === PayloadFormat.Json || value === PayloadFormat.Custom
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
}

/**
 * Encodes a value for publishing: with a custom codec, that codec; otherwise
 * `Uint8Array`/`Buffer` as raw bytes and anything else as JSON. Raw bytes are
 * not copied here: a driver copies (or encodes) payloads before its `append`
 * returns, so a caller may reuse its buffer as soon as `publish` is called.
 */
export function encodePayload(data: unknown, codec?: Codec): EncodedPayload {
  if (codec !== undefined) {
    let bytes: unknown
    try {
      bytes = codec.encode(data)
    } catch (err) {
      throw sluiceError(ErrorCode.InvalidArgument, `the custom codec failed to encode the message: ${String(err)}`, {
        cause: err,
      })
    }
    if (!(bytes instanceof Uint8Array)) {
      throw sluiceError(ErrorCode.InvalidArgument, 'the custom codec must return a Uint8Array from encode()')
    }
    return { payload: asBuffer(bytes), format: PayloadFormat.Custom }
  }
  if (data instanceof Uint8Array) return { payload: asBuffer(data), format: PayloadFormat.Bytes }
  // JSON.stringify returns undefined for undefined, functions and symbols, whatever its type says.
  let json: unknown
  try {
    json = JSON.stringify(data)
  } catch (err) {
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `message data is not JSON-serialisable (${String(err)}); pass a Buffer or a custom codec`,
      { cause: err },
    )
  }
  if (typeof json !== 'string') {
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `message data of type ${typeof data} is not JSON-serialisable; pass a JSON value, a Buffer or a custom codec`,
    )
  }
  return { payload: Buffer.from(json, 'utf8'), format: PayloadFormat.Json }
}

/** Decodes a stored payload by its format; a custom payload without a codec stays bytes. */
export function decodePayload(payload: Uint8Array, format: PayloadFormat, codec?: Codec): unknown {
  switch (format) {
    case PayloadFormat.Json:
      return JSON.parse(asBuffer(payload).toString('utf8')) as unknown
    case PayloadFormat.Custom:
      return codec === undefined ? asBuffer(payload) : codec.decode(payload)
    case PayloadFormat.Bytes:
      return asBuffer(payload)
  }
}
