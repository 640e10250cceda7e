/**
 * Every error a public Sluice API throws is a `SluiceError` with a stable `code`
 * from this one table. Branch on `err.code`, never on the message text.
 */

/** The stable error codes. The values never change once released. */
export const ErrorCode = {
  InvalidArgument: 'INVALID_ARGUMENT',
  TopicNotFound: 'TOPIC_NOT_FOUND',
  Conflict: 'CONFLICT',
  MessageTooLarge: 'MESSAGE_TOO_LARGE',
  StorageFull: 'STORAGE_FULL',
  StorageFailed: 'STORAGE_FAILED',
  Corrupt: 'CORRUPT',
  Closed: 'CLOSED',
  Unsupported: 'UNSUPPORTED',
  Locked: 'LOCKED',
  LeaseLost: 'LEASE_LOST',
  QueueFull: 'QUEUE_FULL',
  RateLimited: 'RATE_LIMITED',
  Timeout: 'TIMEOUT',
  Aborted: 'ABORTED',
  Unavailable: 'UNAVAILABLE',
  Protocol: 'PROTOCOL',
  Unauthorized: 'UNAUTHORIZED',
  Forbidden: 'FORBIDDEN',
  Internal: 'INTERNAL',
} as const

export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode]

interface ErrorSpec {
  /** What the code means, for docs and the HTTP API. */
  readonly meaning: string
  /** Whether the same call may succeed if simply tried again later. */
  readonly retriable: boolean
  /** The status the HTTP API answers with. */
  readonly httpStatus: number
}

/** The one table: meaning, retriability and HTTP status of every code. */
export const errorTable: Readonly<Record<ErrorCode, ErrorSpec>> = {
  INVALID_ARGUMENT: { meaning: 'an argument or option is invalid', retriable: false, httpStatus: 400 },
  TOPIC_NOT_FOUND: { meaning: 'the topic does not exist', retriable: false, httpStatus: 404 },
  CONFLICT: { meaning: 'the request conflicts with existing state', retriable: false, httpStatus: 409 },
  MESSAGE_TOO_LARGE: { meaning: "the message exceeds the topic's maxMessageBytes", retriable: false, httpStatus: 413 },
  STORAGE_FULL: { meaning: 'the disk is full; nothing was stored', retriable: true, httpStatus: 507 },
  STORAGE_FAILED: {
    meaning: 'the storage failed and refuses writes until reopened',
    retriable: false,
    httpStatus: 500,
  },
  CORRUPT: { meaning: 'stored data failed its checksum', retriable: false, httpStatus: 500 },
  CLOSED: { meaning: 'the instance or subscription is closed', retriable: false, httpStatus: 503 },
  UNSUPPORTED: { meaning: 'this driver cannot provide the requested feature', retriable: false, httpStatus: 501 },
  LOCKED: { meaning: 'another process owns the data directory', retriable: false, httpStatus: 423 },
  LEASE_LOST: { meaning: 'the lease on the message was lost; the ack was refused', retriable: false, httpStatus: 409 },
  QUEUE_FULL: { meaning: "the topic's backlog limit is reached", retriable: true, httpStatus: 429 },
  RATE_LIMITED: { meaning: "the topic's rate limit is reached", retriable: true, httpStatus: 429 },
  TIMEOUT: { meaning: 'the operation timed out', retriable: true, httpStatus: 408 },
  ABORTED: { meaning: 'the operation was aborted by its signal', retriable: false, httpStatus: 499 },
  UNAVAILABLE: { meaning: 'the server is unreachable or shutting down', retriable: true, httpStatus: 503 },
  PROTOCOL: { meaning: 'a malformed or unexpected protocol frame', retriable: false, httpStatus: 400 },
  UNAUTHORIZED: { meaning: 'missing or invalid credentials', retriable: false, httpStatus: 401 },
  FORBIDDEN: { meaning: 'the credentials do not allow this operation', retriable: false, httpStatus: 403 },
  INTERNAL: { meaning: 'an unexpected internal error', retriable: false, httpStatus: 500 },
}

export interface SluiceErrorOptions {
  /** Structured facts about the failure (names, limits, pids). Sent over the wire as-is. */
  readonly details?: Readonly<Record<string, unknown>>
  readonly cause?: unknown
}

/** The base of every error thrown by a public Sluice API. */
export class SluiceError extends Error {
  override readonly name: string = 'SluiceError'
  readonly code: ErrorCode
  readonly details: Readonly<Record<string, unknown>>

  constructor(code: ErrorCode, message: string, options: SluiceErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause })
    this.code = code
    this.details = options.details ?? {}
  }

  /** Whether retrying the same call later may succeed (`retry.ts` retries only these). */
  get retriable(): boolean {
    return errorTable[this.code].retriable
  }

  /** The status the HTTP API answers with for this error. */
  get httpStatus(): number {
    return errorTable[this.code].httpStatus
  }

  /** The wire form, sent by the broker and rebuilt by `errorFromWire`. */
  toJSON(): { code: ErrorCode; message: string; details: Readonly<Record<string, unknown>> } {
    return { code: this.code, message: this.message, details: this.details }
  }
}

/** Thrown when a bounded topic is full; `retryAfterMs` is a hint from the measured drain rate. */
export class QueueFullError extends SluiceError {
  override readonly name = 'QueueFullError'
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number, options: SluiceErrorOptions = {}) {
    super(ErrorCode.QueueFull, message, { ...options, details: { ...options.details, retryAfterMs } })
    this.retryAfterMs = retryAfterMs
  }
}

/** Thrown when a rate limit refuses a publish; retry after `retryAfterMs`. */
export class RateLimitedError extends SluiceError {
  override readonly name = 'RateLimitedError'
  readonly retryAfterMs: number
  constructor(message: string, retryAfterMs: number, options: SluiceErrorOptions = {}) {
    super(ErrorCode.RateLimited, message, { ...options, details: { ...options.details, retryAfterMs } })
    this.retryAfterMs = retryAfterMs
  }
}

/** The one factory: builds the right class for a code. */
export function sluiceError(code: ErrorCode, message: string, options: SluiceErrorOptions = {}): SluiceError {
  const retryAfterMs = options.details?.['retryAfterMs']
  if (code === ErrorCode.QueueFull) {
    return new QueueFullError(message, typeof retryAfterMs === 'number' ? retryAfterMs : 0, options)
  }
  if (code === ErrorCode.RateLimited) {
    return new RateLimitedError(message, typeof retryAfterMs === 'number' ? retryAfterMs : 0, options)
  }
  return new SluiceError(code, message, options)
}

const knownCodes = new Set<string>(Object.values(ErrorCode))

export function isErrorCode(value: unknown): value is ErrorCode {
  return typeof value === 'string' && knownCodes.has(value)
}

/** Rebuilds an error received as `{ code, message, details }`; an unknown code becomes INTERNAL. */
export function errorFromWire(wire: { code: unknown; message: unknown; details?: unknown }): SluiceError {
  const code = isErrorCode(wire.code) ? wire.code : ErrorCode.Internal
  const message = typeof wire.message === 'string' ? wire.message : 'unknown error'
  const details =
    typeof wire.details === 'object' && wire.details !== null ? (wire.details as Record<string, unknown>) : {}
  return sluiceError(code, message, { details })
}

/** Whether a value is a SluiceError with the given code. */
export function hasCode(err: unknown, code: ErrorCode): err is SluiceError {
  return err instanceof SluiceError && err.code === code
}

/** Wraps any thrown value as a SluiceError, keeping the original as `cause`. */
export function asSluiceError(err: unknown, code: ErrorCode = ErrorCode.Internal): SluiceError {
  if (err instanceof SluiceError) return err
  const message = err instanceof Error ? err.message : String(err)
  return sluiceError(code, message, { cause: err })
}
