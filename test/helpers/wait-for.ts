import { setImmediate as tick } from 'node:timers/promises'

/**
 * Waits until `condition` holds, checking after each turn of the event loop
 * (not on a timer), and fails after `timeoutMs` with `what` in the message.
 */
export async function waitFor(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await tick()
  }
}
