import { Broker } from '../../broker/server.ts'
import { ErrorCode, sluiceError, type SluiceError } from '../../core/errors.ts'
import { dataDirOf, openDriver } from '../../open.ts'

export interface ServeOptions {
  readonly dataDir: string
  /** Another runtime to front instead of the embedded engine: `redis://…`, `redis+cluster://…`. */
  readonly url?: string
  readonly host: string
  readonly port: number
  readonly httpPort: number
  readonly maxConnections: number
  readonly maxFrameBytes: number
  readonly diskReserveBytes: number
  readonly drainTimeoutMs: number
}

/**
 * `sluice serve`: the broker on the embedded engine (or on the runtime
 * `--url` names: Redis, a Redis Cluster). SIGTERM/SIGINT drain
 * (stop accepting, report not ready, let in-flight acks land, fsync, close);
 * a second signal exits at once.
 */
export async function serve(options: ServeOptions, print: (line: string) => void): Promise<void> {
  const url =
    options.url ?? (options.dataDir === 'memory:' ? 'memory:' : `file:${options.dataDir.replace(/^file:/, '')}`)
  if (url.startsWith('sluice://'))
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `a broker cannot front another broker (${url}); give --url redis://… or --data-dir`,
    )
  const where = url.startsWith('file:') ? dataDirOf(url) : url === 'memory:' ? 'memory' : redacted(url)
  const driver = await openDriver(url, { diskReserveBytes: options.diskReserveBytes })
  const broker = new Broker(driver, {
    host: options.host,
    port: options.port,
    httpPort: options.httpPort,
    maxConnections: options.maxConnections,
    limits: { maxFrameBytes: options.maxFrameBytes },
    drainTimeoutMs: options.drainTimeoutMs,
  })
  let bound: { port: number; httpPort: number | null }
  try {
    bound = await broker.start()
  } catch (err) {
    // What listened (the protocol port, perhaps) stops, and the engine lets go of the data directory.
    await broker.stop().catch(() => driver.close())
    throw portInUse(err, options) ?? err
  }
  const { port, httpPort } = bound
  print(
    `sluice broker listening on ${options.host}:${port} (protocol) and ${options.host}:${httpPort} (HTTP: /healthz /readyz), data in ${where}`,
  )
  if (options.host !== '127.0.0.1' && options.host !== 'localhost' && options.host !== '::1') {
    print(
      `warning: listening on ${options.host} without authentication; anyone who can reach this port can publish and consume`,
    )
  }
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      print(`${signal} again: exiting now`)
      process.exit(1)
    }
    stopping = true
    const then = url.startsWith('file:')
      ? 'the log is fsynced and closed'
      : url === 'memory:'
        ? 'the engine is closed'
        : `the connection to ${where} is closed`
    print(`${signal}: draining (in-flight acknowledgements land, then ${then})`)
    broker.stop().then(
      () => {
        print('stopped')
        process.exit(0)
      },
      (err: unknown) => {
        print(`stop failed: ${String(err)}`)
        process.exit(1)
      },
    )
  }
  process.on('SIGTERM', onSignal)
  process.on('SIGINT', onSignal)
}

/** A port already taken (EADDRINUSE), said in one line: which port, and the flag that picks another. */
function portInUse(err: unknown, options: ServeOptions): SluiceError | null {
  const e = err as NodeJS.ErrnoException & { port?: number }
  if (e.code !== 'EADDRINUSE') return null
  const http = e.port !== undefined && e.port === options.httpPort && e.port !== options.port
  const [what, flag] = http ? ['HTTP', '--http-port'] : ['protocol', '--port']
  const port = e.port ?? (http ? options.httpPort : options.port)
  return sluiceError(
    ErrorCode.Unavailable,
    `the ${what} port ${port} on ${options.host} is already in use (another 'sluice serve'?); stop what listens there or pick another port with ${flag} <port> (0: any free one)`,
    { details: { port, host: options.host } },
  )
}

/** A URL as it may be printed: any password replaced. */
function redacted(url: string): string {
  return url.replace(/\/\/([^:@/]*):[^@/]*@/, '//$1:***@')
}
