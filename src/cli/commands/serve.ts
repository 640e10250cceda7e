import { Broker } from '../../broker/server.ts'
import { Engine } from '../../engine/engine.ts'
import { ErrorCode, sluiceError, type SluiceError } from '../../core/errors.ts'
import { dataDirOf } from '../../open.ts'

export interface ServeOptions {
  readonly dataDir: string
  readonly host: string
  readonly port: number
  readonly httpPort: number
  readonly maxConnections: number
  readonly maxFrameBytes: number
  readonly diskReserveBytes: number
  readonly drainTimeoutMs: number
}

/**
 * `sluice serve`: the broker on the embedded engine. SIGTERM/SIGINT drain
 * (stop accepting, report not ready, let in-flight acks land, fsync, close);
 * a second signal exits at once.
 */
export async function serve(options: ServeOptions, print: (line: string) => void): Promise<void> {
  const dir =
    options.dataDir === 'memory:'
      ? undefined
      : dataDirOf(options.dataDir.startsWith('file:') ? options.dataDir : `file:${options.dataDir}`)
  const engine = await Engine.open({ dir, diskReserveBytes: options.diskReserveBytes })
  const broker = new Broker(engine, {
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
    await broker.stop().catch(() => engine.close())
    throw portInUse(err, options) ?? err
  }
  const { port, httpPort } = bound
  print(
    `sluice broker listening on ${options.host}:${port} (protocol) and ${options.host}:${httpPort} (HTTP: /healthz /readyz), data in ${dir ?? 'memory'}`,
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
    print(`${signal}: draining (in-flight acknowledgements land, then the log is fsynced and closed)`)
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
