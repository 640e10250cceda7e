import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Clock } from './core/clock.ts'
import type { Codec } from './core/codec.ts'
import type { Driver } from './core/driver.ts'
import { ErrorCode, sluiceError } from './core/errors.ts'
import { Sluice } from './core/sluice.ts'
import { checkInteger } from './core/validate.ts'

/**
 * The composition root: picks the driver by URL scheme and loads it lazily,
 * so that nobody pays for a driver they do not use.
 */

export interface OpenOptions {
  /**
   * Where messages live:
   * - `file:<dir>` (default `file:./.sluice`): the embedded engine, durable on disk;
   * - `memory:`: the embedded engine, in memory only;
   * - `sluice://host:port` (port default 7420): a broker (`sluice serve`);
   * - `redis://[user:password@]host[:6379][/db][?prefix=name]` (`rediss://` for TLS): Redis Streams,
   *   with `ioredis` installed (an optional peer dependency);
   * - `redis+cluster://host1:7000,host2:7001[?prefix=name]` (`rediss+cluster://`): a Redis Cluster.
   */
  readonly url?: string
  /** `sluice://`: how long the first connection may take, in whole ms of at least 1 (else INVALID_ARGUMENT). Default 10000. */
  readonly connectTimeoutMs?: number
  /** `sluice://`: how long a request may wait for its answer, reconnects included; whole ms of at least 1. Default 30000. */
  readonly requestTimeoutMs?: number
  /** Told about failures consumers handle themselves (a refused ack, a failed lease call). */
  readonly onError?: (err: unknown) => void
  /** Encodes every payload (default: bytes as bytes, anything else as JSON). */
  readonly codec?: Codec
  /** Publishing to an unknown topic creates it with default settings. Default false. */
  readonly autoCreateTopics?: boolean
  /**
   * `file:`: free disk space kept back from publishes, so acknowledgements
   * and recovery have room when the disk fills; publishes get STORAGE_FULL
   * meanwhile. Default 64 MiB; 0 turns it off.
   */
  readonly diskReserveBytes?: number
  /**
   * Embedded: the most bytes of recent records kept in memory for consumers,
   * across all topics and partitions together (each partition keeps at most
   * 4 MiB of them). Default 256 MiB.
   */
  readonly cacheBytes?: number
  /** Time source, for tests. */
  readonly clock?: Clock
}

export const defaultDataDir = './.sluice'

/** The longest delay a Node timer takes as given. */
const maxTimerMs = 2 ** 31 - 1

/** Turns `file:./data`, `file:/abs` or `file:///abs` into a directory path. */
export function dataDirOf(url: string): string {
  const rest = url.slice('file:'.length)
  if (rest.startsWith('//')) return fileURLToPath(url)
  if (rest.length === 0)
    throw sluiceError(ErrorCode.InvalidArgument, "url 'file:' needs a directory, like 'file:./data'")
  return resolve(rest)
}

/**
 * Opens Sluice. Without options: the embedded engine with its data in `./.sluice`.
 * A string is the URL alone: `open('memory:')` is `open({ url: 'memory:' })`.
 * Throws LOCKED when another process owns the data directory, CORRUPT when
 * recovery finds damaged data, INVALID_ARGUMENT for an unknown URL or
 * options that are neither a URL string nor an object.
 */
export async function open(urlOrOptions: OpenOptions | string = {}): Promise<Sluice> {
  const options = openOptions(urlOrOptions)
  const url = options.url ?? `file:${defaultDataDir}`
  if (typeof url !== 'string') throw sluiceError(ErrorCode.InvalidArgument, 'url must be a string')
  // Past 2^31 - 1 ms, Node's timers fire at once: such a "timeout" would be none.
  for (const name of ['connectTimeoutMs', 'requestTimeoutMs'] as const)
    if (options[name] !== undefined) checkInteger(name, options[name], 1, maxTimerMs)
  if (options.cacheBytes !== undefined) checkInteger('cacheBytes', options.cacheBytes, 0, Number.MAX_SAFE_INTEGER)
  const reserve = options.diskReserveBytes
  if (reserve !== undefined && !(Number.isSafeInteger(reserve) && reserve >= 0))
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `diskReserveBytes must be a whole number of bytes, 0 or more (got ${String(reserve)})`,
    )
  const sluiceOptions = {
    codec: options.codec,
    autoCreateTopics: options.autoCreateTopics,
    clock: options.clock,
    onError: options.onError,
  }
  return new Sluice(await openDriver(url, options), sluiceOptions)
}

/**
 * The driver of a URL, loaded lazily: the embedded engine for `file:` and
 * `memory:`, the broker client for `sluice://`, Redis for `redis://` and
 * `redis+cluster://`. What `open()` wraps in a `Sluice`, and what `sluice
 * serve --url` puts the broker in front of.
 */
export async function openDriver(url: string, options: OpenOptions = {}): Promise<Driver> {
  if (url === 'memory:' || url.startsWith('file:')) {
    const { Engine } = await import('./engine/engine.ts')
    return Engine.open({
      dir: url === 'memory:' ? undefined : dataDirOf(url),
      clock: options.clock,
      diskReserveBytes: options.diskReserveBytes,
      cacheBytes: options.cacheBytes,
    })
  }
  if (url.startsWith('sluice://')) {
    const { host, port } = brokerAddress(url)
    const { RemoteDriver } = await import('./client/remote-driver.ts')
    return RemoteDriver.connect({
      host,
      port,
      connectTimeoutMs: options.connectTimeoutMs ?? 10_000,
      requestTimeoutMs: options.requestTimeoutMs ?? 30_000,
    })
  }
  if (/^rediss?(\+cluster)?:/i.test(url)) {
    const [{ parseRedisUrl }, { RedisDriver }] = await Promise.all([
      import('./drivers/redis/link.ts'),
      import('./drivers/redis/redis-driver.ts'),
    ])
    return RedisDriver.connect({
      endpoint: parseRedisUrl(url),
      clock: options.clock,
      connectTimeoutMs: options.connectTimeoutMs,
    })
  }
  const scheme = /^([a-z][a-z0-9+.-]*):/i.exec(url)?.[1]
  throw sluiceError(
    ErrorCode.InvalidArgument,
    `unknown url ${JSON.stringify(url)}${scheme === undefined ? '' : ` (scheme ${scheme}:)`}; use 'file:<dir>', 'memory:', 'sluice://host:port', 'redis://host:6379' or 'redis+cluster://host1:7000,host2:7001'`,
    { details: { url } },
  )
}

/** The options object of `open(urlOrOptions)`; anything but a string or a plain object is refused, not ignored. */
function openOptions(given: unknown): OpenOptions {
  if (typeof given === 'string') return { url: given }
  if (typeof given !== 'object' || given === null || Array.isArray(given))
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `open takes a URL string ('memory:', 'file:./data', 'sluice://host:7420') or an options object like { url }, got ${given === null ? 'null' : Array.isArray(given) ? 'an array' : typeof given}`,
    )
  return given
}

/** `sluice://host:port` -> host and port (7420 when absent). */
export function brokerAddress(url: string): { host: string; port: number } {
  let parsed: URL
  try {
    parsed = new URL(url)
  } catch {
    throw sluiceError(ErrorCode.InvalidArgument, `url ${JSON.stringify(url)} is not a valid sluice://host:port address`)
  }
  const port = parsed.port === '' ? 7420 : Number(parsed.port)
  const host = parsed.hostname.replace(/^\[(.*)\]$/, '$1')
  if (host === '')
    throw sluiceError(ErrorCode.InvalidArgument, `url ${JSON.stringify(url)} has no host; use sluice://host:port`)
  return { host, port }
}
