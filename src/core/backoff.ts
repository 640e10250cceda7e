import { checkKnownKeys, checkInteger, checkNumber, isPlainObject, invalid } from './validate.ts'

/**
 * Redelivery backoff: the delay before a failed delivery is offered again.
 * Attempt n (1-based) waits `initialMs * multiplier^(n-1)`, capped at `maxMs`,
 * then shortened by up to `jitter` (a fraction) at random, so that many
 * consumers failing together do not retry together.
 */
export interface BackoffOptions {
  /** Delay after the first failed attempt. Default 1000. */
  readonly initialMs?: number
  /** Growth per attempt. Default 2. */
  readonly multiplier?: number
  /** Ceiling. Default 60000. */
  readonly maxMs?: number
  /** Fraction of the delay taken off at random, 0 to 1. Default 0.2. */
  readonly jitter?: number
}

export interface Backoff {
  readonly initialMs: number
  readonly multiplier: number
  readonly maxMs: number
  readonly jitter: number
}

export const defaultBackoff: Backoff = { initialMs: 1000, multiplier: 2, maxMs: 60_000, jitter: 0.2 }

export function checkBackoff(value: unknown): Backoff {
  if (value === undefined) return defaultBackoff
  if (!isPlainObject(value)) invalid('backoff must be an object like { initialMs, multiplier, maxMs, jitter }')
  checkKnownKeys('backoff', value, ['initialMs', 'multiplier', 'maxMs', 'jitter'])
  const b = value as BackoffOptions
  const backoff: Backoff = {
    initialMs:
      b.initialMs === undefined
        ? defaultBackoff.initialMs
        : checkInteger('backoff.initialMs', b.initialMs, 0, 86_400_000),
    multiplier:
      b.multiplier === undefined ? defaultBackoff.multiplier : checkNumber('backoff.multiplier', b.multiplier, 1, 100),
    maxMs: b.maxMs === undefined ? defaultBackoff.maxMs : checkInteger('backoff.maxMs', b.maxMs, 0, 86_400_000 * 7),
    jitter: b.jitter === undefined ? defaultBackoff.jitter : checkNumber('backoff.jitter', b.jitter, 0, 1),
  }
  if (backoff.maxMs < backoff.initialMs)
    invalid(`backoff.maxMs (${backoff.maxMs}) must be at least initialMs (${backoff.initialMs})`)
  return backoff
}

/** The delay after failed attempt `attempt` (1-based); `random` in [0, 1). */
export function backoffDelay(backoff: Backoff, attempt: number, random: number = Math.random()): number {
  const base = Math.min(backoff.maxMs, backoff.initialMs * Math.pow(backoff.multiplier, Math.max(0, attempt - 1)))
  return Math.round(base * (1 - backoff.jitter * random))
}
