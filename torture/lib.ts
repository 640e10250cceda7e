import { setTimeout as sleep } from 'node:timers/promises'
import type { Child } from '../test/helpers/child.ts'
import { withTimeout } from '../test/helpers/with-timeout.ts'

/** What the long-running workloads (soak, hostile clients) share. */

export const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`

/** The load phase's end: `stop.abort()` ends it, and every `pause` ends early then. */
export function loadPhase(): { stop: AbortController; stopped: () => boolean; pause: (ms: number) => Promise<void> } {
  const stop = new AbortController()
  return {
    stop,
    stopped: () => stop.signal.aborted,
    pause: (ms) => sleep(ms, undefined, { signal: stop.signal }).catch(() => undefined),
  }
}

/** SIGTERM (a graceful stop), then SIGKILL if it takes longer than 20 s. */
export async function stopBroker(broker: Child | null): Promise<void> {
  if (broker === null || broker.process.exitCode !== null || broker.process.signalCode !== null) return
  broker.process.kill('SIGTERM')
  await withTimeout(broker.exited, 20_000, 'the broker to stop').catch(() => broker.kill9())
}

/**
 * Kills the broker (`current()`, once there is one) and exits if the run outlives `hardLimitMs` or the
 * runner is interrupted, so that no broker is left behind. Returns the release for the run's end.
 */
export function guardBroker(name: string, hardLimitMs: number, current: () => Child | null): () => void {
  const giveUp = (): void =>
    void current()
      ?.kill9()
      .finally(() => process.exit(1))
  const hardLimit = setTimeout(() => {
    process.stderr.write(`${name}: still running after ${hardLimitMs} ms, giving up\n`)
    giveUp()
  }, hardLimitMs)
  hardLimit.unref()
  process.once('SIGINT', giveUp)
  process.once('SIGTERM', giveUp)
  return () => {
    clearTimeout(hardLimit)
    process.off('SIGINT', giveUp)
    process.off('SIGTERM', giveUp)
  }
}

/** Runs `main` as the process's work: its result is the exit code, and a handle left open cannot hang the runner. */
export async function runWorkload(name: string, main: () => Promise<number>): Promise<void> {
  const code = await main().catch((err: unknown) => {
    process.stderr.write(`${name}: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
    return 1
  })
  process.exitCode = code
  setTimeout(() => {
    process.stderr.write(`${name}: something still holds the process 10 s after the end; exiting\n`)
    process.exit(code)
  }, 10_000).unref()
}
