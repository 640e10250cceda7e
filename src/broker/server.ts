import { createServer, type Server, type Socket } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { systemClock } from '../core/clock.ts'
import type { Driver } from '../core/driver.ts'
import { ErrorCode, sluiceError } from '../core/errors.ts'
import { createHttpServer } from './http/server.ts'
import { Connection, defaultConnectionLimits, PartialFrames, type ConnectionLimits } from './tcp/connection.ts'

export interface BrokerOptions {
  /** Interface to listen on. Default 127.0.0.1: listening elsewhere is an explicit choice until authentication exists. */
  readonly host?: string
  /** TCP protocol port; default 7420 (0 picks a free one). */
  readonly port?: number
  /** HTTP port for health checks; default 7421 (0 picks a free one, null disables). */
  readonly httpPort?: number | null
  readonly maxConnections?: number
  readonly limits?: Partial<ConnectionLimits>
  /** How long a graceful stop waits for in-flight requests (acks) to land. Default 10000. */
  readonly drainTimeoutMs?: number
}

/**
 * `sluice serve`: one process owning an engine and serving clients over the
 * binary protocol (TCP) and HTTP.
 */
export class Broker {
  private readonly tcp: Server
  private readonly http: FastifyInstance | null
  private readonly connections = new Set<Connection>()
  private readonly partialFrames = new PartialFrames()
  private readonly limits: ConnectionLimits
  private draining = false
  private stopped: Promise<void> | null = null

  constructor(
    private readonly driver: Driver,
    private readonly options: BrokerOptions = {},
  ) {
    this.limits = { ...defaultConnectionLimits, ...options.limits }
    this.tcp = createServer((socket) => this.accept(socket))
    this.tcp.maxConnections = options.maxConnections ?? 10_000
    this.http =
      options.httpPort === null
        ? null
        : createHttpServer({
            isReady: () => !this.draining,
            checks: () => [
              { name: 'storage', ok: !this.draining, detail: this.draining ? 'draining for shutdown' : 'open' },
            ],
          })
  }

  /** Starts listening; resolves with the ports actually bound. */
  async start(): Promise<{ port: number; httpPort: number | null }> {
    const host = this.options.host ?? '127.0.0.1'
    await new Promise<void>((resolve, reject) => {
      this.tcp.once('error', reject)
      this.tcp.listen(this.options.port ?? 7420, host, () => {
        this.tcp.off('error', reject)
        resolve()
      })
    })
    const address = this.tcp.address()
    const port = typeof address === 'object' && address !== null ? address.port : 0
    let httpPort: number | null = null
    if (this.http !== null) {
      await this.http.listen({ host, port: this.options.httpPort ?? 7421 })
      const httpAddress = this.http.server.address()
      httpPort = typeof httpAddress === 'object' && httpAddress !== null ? httpAddress.port : null
    }
    return { port, httpPort }
  }

  private accept(socket: Socket): void {
    if (this.draining) {
      socket.destroy()
      return
    }
    const connection = new Connection(
      socket,
      this.driver,
      this.limits,
      (c) => this.connections.delete(c),
      this.partialFrames,
    )
    this.connections.add(connection)
  }

  /** The bound protocol port (after start). */
  get address(): { port: number } {
    const address = this.tcp.address()
    return { port: typeof address === 'object' && address !== null ? address.port : 0 }
  }

  /** Open client connections. */
  get connectionCount(): number {
    return this.connections.size
  }

  /**
   * Graceful stop: refuse new connections, report not ready, stop pushing
   * deliveries, let in-flight requests (acks, publishes) land, say goodbye,
   * then close the engine (which fsyncs).
   */
  stop(): Promise<void> {
    this.stopped ??= this.shutdown()
    return this.stopped
  }

  private async shutdown(): Promise<void> {
    this.draining = true
    const closing = new Promise<void>((resolve) => this.tcp.close(() => resolve()))
    for (const connection of this.connections) connection.stopDelivering()
    // On the capped clock: a drainTimeoutMs past 2^31-1 must not become a 1 ms wait.
    const timeout = new Promise<void>((resolve) => systemClock.setTimer(resolve, this.options.drainTimeoutMs ?? 10_000))
    await Promise.race([Promise.all([...this.connections].map((c) => c.idle())), timeout])
    const bye = sluiceError(ErrorCode.Unavailable, 'the broker is shutting down; reconnect to another or retry later')
    for (const connection of this.connections) connection.close(bye)
    await closing
    await this.http?.close()
    await this.driver.close()
  }
}
