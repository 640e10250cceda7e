import assert from 'node:assert/strict'
import { setImmediate as turn } from 'node:timers/promises'
import { has, type Need } from '../capabilities.ts'
import { ErrorCode, SluiceError } from '../errors.ts'
import type { Sluice } from '../sluice.ts'
import type { OutgoingMessage, Receipt } from '../types.ts'

/** Waits until `condition` holds, checking on each turn of the event loop; fails after `timeoutMs` of real time. */
export async function eventually(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 20_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await turn()
  }
}

/** Lets the event loop turn `n` times: a delay that takes no clock time. */
export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn()
}

/** Publishes in batches of 500; resolves with every receipt, in order. */
export async function publishMany<T>(
  sluice: Sluice,
  topic: string,
  messages: readonly OutgoingMessage<T>[],
): Promise<Receipt[]> {
  const receipts: Receipt[] = []
  for (let i = 0; i < messages.length; i += 500)
    receipts.push(...(await sluice.publishBatch(topic, messages.slice(i, i + 500))))
  return receipts
}

/** A unique name for a topic or subscription within one test run. */
export function uniqueName(prefix: string): string {
  return `${prefix}-${Math.random().toString(36).slice(2, 10)}`
}

/** A small seeded PRNG (mulberry32), so random schedules are replayable. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** A promise with its resolve function, for handlers a test releases by hand. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => (resolve = r))
  return { promise, resolve }
}

/** Whether the runtime declares `need` (`sluice.capabilities()`). */
export function supports(sluice: Sluice, need: Need): boolean {
  return has(sluice.capabilities(), need)
}

/** The capability and value a need names, as UNSUPPORTED's details give them. */
function named(need: Need): string {
  return (typeof need === 'string' ? [need] : need).map((part) => JSON.stringify(part)).join(' ')
}

/**
 * Asserts that `call` fails with UNSUPPORTED naming one of `needs` in its
 * details (`capability`, and `value` for a list capability).
 */
export async function assertUnsupported(call: () => unknown, needs: readonly Need[]): Promise<void> {
  await assert.rejects(
    async () => {
      await call()
    },
    (err: unknown) => {
      assert.ok(err instanceof SluiceError, `expected UNSUPPORTED, got ${String(err)}`)
      assert.equal(err.code, ErrorCode.Unsupported, err.message)
      const { capability, value } = err.details
      const given = [capability, value]
        .filter((part) => part !== undefined)
        .map((part) => JSON.stringify(part))
        .join(' ')
      assert.ok(
        needs.map(named).includes(given),
        `UNSUPPORTED names ${given}, not one of ${needs.map(named).join(', ')}: ${err.message}`,
      )
      return true
    },
    `expected UNSUPPORTED for ${needs.map(named).join(', ')}`,
  )
}

/**
 * Gates a case on what the runtime declares. With every need present,
 * resolves true (without calling `declare`): the case goes on to assert the
 * behaviour. With one absent, calls `declare`, the call that asks for it,
 * asserts that it fails with UNSUPPORTED naming a missing need, and resolves
 * false: the case ends there, having asserted the refusal. Never a skip.
 *
 *   if (!(await requires(sluice, [['orderings', 'global']], () => sluice.subscribe(t, 's', { ordering: 'global' }))))
 *     return
 */
export async function requires(sluice: Sluice, needs: readonly Need[], declare: () => unknown): Promise<boolean> {
  const missing = needs.filter((need) => !supports(sluice, need))
  if (missing.length === 0) return true
  await assertUnsupported(declare, missing)
  return false
}
