import { setImmediate as turn } from 'node:timers/promises'
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
