import { InvalidArgumentError, Option, type Command } from 'commander'
import { open } from '../open.ts'
import type { Sluice } from '../core/sluice.ts'

/** Option parsers and the options every client verb shares (`--url`, `--connect-timeout-ms`, `--json`). */

export const defaultUrl = 'sluice://127.0.0.1:7420'

/** Parses a non-negative integer; commander turns the throw into a usage error. */
export function integer(value: string): number {
  const n = Number(value)
  if (value.trim() === '' || !Number.isSafeInteger(n) || n < 0)
    throw new InvalidArgumentError('expected a non-negative integer')
  return n
}

/** Parses an integer of at least 1. */
export function positiveInteger(value: string): number {
  const n = integer(value)
  if (n < 1) throw new InvalidArgumentError('expected an integer of at least 1')
  return n
}

/** Collects repeated `--header name=value` flags into one headers object (a repeated name: the last wins). */
export function header(value: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = value.indexOf('=')
  if (at <= 0) throw new InvalidArgumentError('expected name=value')
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) }
}

/** What `addClientOptions` adds to a verb's options. */
export interface ClientOptions {
  readonly url: string
  readonly connectTimeoutMs: number
  readonly json?: boolean
}

/** Adds `--url`, `--connect-timeout-ms` and `--json` to a client verb. */
export function addClientOptions(command: Command, json: string): Command {
  return command
    .addOption(
      new Option('--url <url>', "where Sluice is: a broker 'sluice://host:port', or a data directory 'file:<dir>'")
        .env('SLUICE_URL')
        .default(defaultUrl),
    )
    .addOption(
      new Option('--connect-timeout-ms <ms>', 'how long to keep trying to reach the broker')
        .env('SLUICE_CONNECT_TIMEOUT_MS')
        .default(5000)
        .argParser(positiveInteger),
    )
    .option('--json', json)
}

/**
 * Opens Sluice at `--url`, runs `fn` and closes it, whether `fn` succeeds or
 * throws. `onError` hears failures consumers handle themselves.
 */
export async function withSluice<T>(
  options: ClientOptions,
  fn: (sluice: Sluice) => Promise<T>,
  onError?: (err: unknown) => void,
): Promise<T> {
  const sluice = await open({ url: options.url, connectTimeoutMs: options.connectTimeoutMs, onError })
  let result: T
  try {
    result = await fn(sluice)
  } catch (err) {
    // The command's failure is the one to report, not a second one while closing.
    await sluice.close().catch(() => undefined)
    throw err
  }
  await sluice.close()
  return result
}
