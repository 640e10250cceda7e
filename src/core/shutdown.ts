import type { Sluice } from './sluice.ts'

export interface ShutdownOptions {
  /** Default SIGTERM and SIGINT. */
  readonly signals?: readonly NodeJS.Signals[]
  /** How long draining may take before handlers are aborted. Default 25000 (inside Kubernetes' 30 s grace period). */
  readonly timeoutMs?: number
  /** Exit the process once closed (code 0), as a service should. Default true. */
  readonly exit?: boolean
  /** Called when the first signal arrives, before draining. */
  readonly onSignal?: (signal: NodeJS.Signals) => void
  /** Called once closed (err set when closing failed), before the process exits. */
  readonly onClosed?: (err?: unknown) => void
}

/**
 * Drains and closes `sluice` on SIGTERM/SIGINT: running handlers finish (up
 * to `timeoutMs`), prefetched messages go back, acknowledgements land, then
 * the process exits (code 0, or 1 when closing failed). A second signal exits at once with code 1. Returns a
 * function that removes the signal handlers.
 */
export function closeOnSignals(sluice: Sluice, options: ShutdownOptions = {}): () => void {
  const signals = options.signals ?? ['SIGTERM', 'SIGINT']
  let closing = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (closing) {
      process.exit(1)
    }
    closing = true
    options.onSignal?.(signal)
    sluice.close({ drain: true, timeoutMs: options.timeoutMs ?? 25_000 }).then(
      () => {
        options.onClosed?.()
        if (options.exit ?? true) process.exit(0)
      },
      (err: unknown) => {
        options.onClosed?.(err)
        // A failed drain must not look like a clean one.
        if (options.exit ?? true) process.exit(1)
      },
    )
  }
  for (const signal of signals) process.on(signal, onSignal)
  return () => {
    for (const signal of signals) process.off(signal, onSignal)
  }
}
