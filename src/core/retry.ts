import { backoffDelay, type Backoff } from './backoff.ts'
import type { Clock } from './clock.ts'
import { ErrorCode, SluiceError } from './errors.ts'
import { checkInteger, checkKnownKeys, checkNumber, invalid, isPlainObject } from './validate.ts'

/**
 * Retrying with capped exponential backoff and jitter (the delay of
 * `backoffDelay`, as for redelivery, with its own defaults). Only errors whose
 * code is `retriable` in the error table are retried (a bad argument stays
 * bad); `bail` stops early.
 */
export interface RetryPolicy extends Backoff {
  /** Attempts in total, the first included. Default 5. */
  readonly maxAttempts: number
  /** Wait after the first failure. Default 100. */
  readonly initialMs: number
  readonly multiplier: number
  /** Ceiling of one wait. Default 5000. */
  readonly maxMs: number
  /** Fraction of each wait taken off at random. Default 0.2. */
  readonly jitter: number
}

export const defaultPublishRetry: RetryPolicy = {
  maxAttempts: 5,
  initialMs: 100,
  multiplier: 2,
  maxMs: 5000,
  jitter: 0.2,
}

export function checkRetryPolicy(value: unknown, fallback: RetryPolicy): RetryPolicy | null {
  if (value === undefined) return fallback
  if (value === false) return null
  if (!isPlainObject(value))
    invalid('retry must be false or an object like { maxAttempts, initialMs, maxMs, multiplier, jitter }')
  checkKnownKeys('retry', value, ['maxAttempts', 'initialMs', 'multiplier', 'maxMs', 'jitter'])
  const v = value as Partial<RetryPolicy>
  return {
    maxAttempts:
      v.maxAttempts === undefined ? fallback.maxAttempts : checkInteger('retry.maxAttempts', v.maxAttempts, 1, 1000),
    initialMs:
      v.initialMs === undefined ? fallback.initialMs : checkInteger('retry.initialMs', v.initialMs, 0, 3_600_000),
    multiplier:
      v.multiplier === undefined ? fallback.multiplier : checkNumber('retry.multiplier', v.multiplier, 1, 100),
    maxMs: v.maxMs === undefined ? fallback.maxMs : checkInteger('retry.maxMs', v.maxMs, 0, 3_600_000),
    jitter: v.jitter === undefined ? fallback.jitter : checkNumber('retry.jitter', v.jitter, 0, 1),
  }
}

/** Codes retried by default: transient trouble. Backpressure (QUEUE_FULL, RATE_LIMITED) is retried only when asked. */
const defaultRetried = new Set<string>([ErrorCode.StorageFull, ErrorCode.Timeout, ErrorCode.Unavailable])

export function isTransient(err: unknown): boolean {
  return err instanceof SluiceError && err.retriable && defaultRetried.has(err.code)
}

/**
 * Runs `attempt` until it succeeds, fails with an error `shouldRetry` refuses,
 * or runs out of attempts (then the last error is thrown). A `retryAfterMs`
 * hint on the error is waited for when it is longer than the backoff.
 */
export async function retrying<T>(
  attempt: () => Promise<T>,
  policy: RetryPolicy | null,
  clock: Clock,
  shouldRetry: (err: unknown) => boolean = isTransient,
  random: () => number = Math.random,
): Promise<T> {
  for (let n = 1; ; n++) {
    try {
      return await attempt()
    } catch (err) {
      if (policy === null || n >= policy.maxAttempts || !shouldRetry(err)) throw err
      const backoff = backoffDelay(policy, n, random())
      const hint =
        err instanceof SluiceError && typeof err.details['retryAfterMs'] === 'number' ? err.details['retryAfterMs'] : 0
      const wait = Math.max(backoff, hint)
      await new Promise<void>((resolve) => clock.setTimer(resolve, wait, true))
    }
  }
}
