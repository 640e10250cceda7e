import { connect, type Socket } from 'node:net'
import { asSluiceError, errorFromWire, ErrorCode, SluiceError, sluiceError } from '../core/errors.ts'
import { systemClock } from '../core/clock.ts'
import {
  encodeFrame,
  FrameKind,
  FrameParser,
  protocolVersion,
  defaultMaxFrameBytes,
  type Frame,
} from '../protocol/frame.ts'
import { Op } from '../protocol/ops.ts'
import { asArray, asObject } from '../protocol/wire.ts'

export interface ConnectionOptions {
  readonly host: string
  readonly port: number
  /** How long the first connection may take before open() fails. Default 10000. */
  readonly connectTimeoutMs: number
  /** How long a request may wait for its answer (including a reconnect). Default 30000. */
  readonly requestTimeoutMs: number
}

export interface ConnectionEvents {
  deliver(consumerId: number, records: unknown[]): void
  leaseLost(consumerId: number, refs: unknown[]): void
  /** The broker ended a consumer (its subscription or topic was deleted). */
  consumerClosed(consumerId: number, reason: SluiceError): void
  /** The connection dropped: leases held through it are gone. */
  disconnected(): void
  /** A new connection is up: restore consumers before queued requests go out. */
  resumed(): Promise<void>
}

interface Request {
  readonly op: Op
  readonly args: unknown
  readonly retriable: boolean
  /** The broker may hold it on purpose (a publish waiting for room): idle() does not wait for it. */
  readonly waits: boolean
  readonly resolve: (value: unknown) => void
  readonly reject: (err: SluiceError) => void
  /** Cancels its timeout (on the capped clock: requestTimeoutMs plus a long wait may pass 2^31-1 ms). */
  readonly stopTimer: () => void
  id: number
}

/** How an HTTP server's answer (to the HELLO it cannot parse: a 400) begins. */
const httpAnswer = Buffer.from('HTTP/', 'latin1')

const State = { Connecting: 'connecting', Resuming: 'resuming', Ready: 'ready', Closed: 'closed' } as const
type State = (typeof State)[keyof typeof State]

/**
 * The client's link to a broker: one socket, pipelined requests answered by
 * id, reconnection with backoff. Requests that can be repeated safely
 * (reads, idempotent appends) are sent again after a reconnect; others fail
 * with UNAVAILABLE, because the broker may or may not have applied them.
 */
export class ClientConnection {
  private socket: Socket | null = null
  /** The socket corked for this tick's frames, if any. */
  private corked: Socket | null = null
  /** The socket of a connection attempt still waiting for WELCOME (close() ends it). */
  private attempt: Socket | null = null
  private state: State = State.Connecting
  private nextId = 1
  private readonly inFlight = new Map<number, Request>()
  private queue: Request[] = []
  private welcome: { maxFrameBytes: number; capabilities: unknown } | null = null
  private lastError: SluiceError | null = null
  private readyWaiters: { resolve: () => void; reject: (err: unknown) => void }[] = []
  private everConnected = false
  /** The wait between two connection attempts, while one runs. */
  private backoff: { timer: NodeJS.Timeout; wake: () => void } | null = null

  constructor(
    private readonly options: ConnectionOptions,
    private readonly events: ConnectionEvents,
  ) {}

  get maxFrameBytes(): number {
    return this.welcome?.maxFrameBytes ?? defaultMaxFrameBytes
  }

  get capabilities(): unknown {
    return this.welcome?.capabilities
  }

  /** Connects (retrying with backoff up to connectTimeoutMs); later drops reconnect on their own. */
  async open(): Promise<void> {
    const ready = new Promise<void>((resolve, reject) => this.readyWaiters.push({ resolve, reject }))
    const timer = setTimeout(() => {
      const cause = this.lastError?.message ?? 'no answer'
      this.fail(
        sluiceError(
          ErrorCode.Unavailable,
          `cannot reach the broker at ${this.options.host}:${this.options.port} (${cause}); is 'sluice serve' running there?`,
          { details: { host: this.options.host, port: this.options.port } },
        ),
      )
    }, this.options.connectTimeoutMs)
    void this.connectLoop()
    try {
      await ready
    } finally {
      clearTimeout(timer)
    }
  }

  private fail(err: SluiceError): void {
    if (this.everConnected) return
    this.state = State.Closed
    this.socket?.destroy()
    this.attempt?.destroy()
    for (const waiter of this.readyWaiters.splice(0)) waiter.reject(err)
  }

  private async connectLoop(): Promise<void> {
    for (let attempt = 0; this.state === State.Connecting; attempt++) {
      try {
        await this.connectOnce()
        return
      } catch (err) {
        this.lastError = err instanceof SluiceError ? err : sluiceError(ErrorCode.Unavailable, (err as Error).message)
        // Closed during the attempt: no backoff to wait out.
        if (this.currentState() !== State.Connecting) return
        const delay = Math.min(5000, 50 * 2 ** Math.min(attempt, 7)) * (0.5 + Math.random() / 2)
        // Not unref: like a connected socket, a client trying to reconnect keeps the process alive until
        // closed; close() ends the wait at once (see close), so a closed client does not.
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            this.backoff = null
            resolve()
          }, delay)
          this.backoff = { timer, wake: resolve }
        })
      }
    }
  }

  private connectOnce(): Promise<void> {
    return new Promise((resolve, reject) => {
      const socket = connect({ host: this.options.host, port: this.options.port, noDelay: true })
      this.attempt = socket
      const parser = new FrameParser(64 * 1024 * 1024)
      let greeted = false
      const failEarly = (err: Error): void => {
        if (greeted) return
        socket.destroy()
        reject(err)
      }
      // A broker that dies after accepting, before its WELCOME, may close with a FIN and no error (nothing unread
      // on its side): without this, the attempt would wait for ever and the client would never reconnect.
      const closedEarly = (): void => failEarly(new Error('the broker closed the connection before answering HELLO'))
      // A broker that accepts and never answers (stopped, overloaded) must not hold the attempt for ever: give up
      // after connectTimeoutMs, and the loop backs off and tries again.
      const handshakeTimer = setTimeout(
        () => failEarly(new Error(`the broker did not answer HELLO within ${this.options.connectTimeoutMs} ms`)),
        this.options.connectTimeoutMs,
      )
      socket.once('close', () => {
        clearTimeout(handshakeTimer)
        if (this.attempt === socket) this.attempt = null
      })
      socket.once('error', failEarly)
      socket.once('close', closedEarly)
      socket.once('connect', () =>
        socket.write(encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'sluice-js' })),
      )
      /** The first bytes the peer sent, until the WELCOME: enough to tell an HTTP server's answer. */
      let head = Buffer.alloc(0)
      socket.on('data', (data: Buffer) => {
        if (!greeted && head.length < httpAnswer.length) {
          head = Buffer.concat([head, data.subarray(0, httpAnswer.length - head.length)])
          if (head.length === httpAnswer.length && head.equals(httpAnswer)) {
            // Not a broker that speaks another version, but the wrong port: trying again would not help.
            const err = this.httpPortError()
            this.lastError = err
            failEarly(err)
            this.fail(err)
            return
          }
        }
        try {
          handleFrames(parser.push(data))
          parser.throwIfFailed()
        } catch (err) {
          // The broker sent something this client cannot read: drop the connection and start over.
          this.lastError = asSluiceError(err, ErrorCode.Protocol)
          if (!greeted) failEarly(this.lastError)
          else socket.destroy()
        }
      })
      const handleFrames = (frames: Frame[]): void => {
        for (const frame of frames) {
          if (!greeted) {
            if (frame.kind !== FrameKind.Welcome) {
              failEarly(
                frame.kind === FrameKind.Goodbye
                  ? errorFromWire(asObject(frame.body, 'goodbye') as never)
                  : new Error('the broker did not answer HELLO'),
              )
              return
            }
            greeted = true
            clearTimeout(handshakeTimer)
            this.attempt = null
            // Closed while the broker was answering: close() wins, the client stays closed.
            if (this.state !== State.Connecting) {
              socket.destroy()
              reject(sluiceError(ErrorCode.Closed, 'the client is closed'))
              return
            }
            this.welcome = asObject(frame.body, 'welcome') as { maxFrameBytes: number; capabilities: unknown }
            this.socket = socket
            socket.off('error', failEarly)
            socket.off('close', closedEarly)
            socket.on('error', () => undefined)
            socket.on('close', () => this.onClose(socket))
            void this.resume().then(resolve, reject)
            continue
          }
          this.onFrame(frame)
        }
      }
    })
  }

  /** The peer answered HELLO as an HTTP server does: most likely the broker's HTTP port (7421) was given. */
  private httpPortError(): SluiceError {
    const { host, port } = this.options
    return sluiceError(
      ErrorCode.Protocol,
      `${host}:${port} answered like an HTTP server, not a Sluice broker: this looks like the broker's HTTP port; the protocol port is 7420 by default (sluice serve --port), so use sluice://${host}:7420 or the port 'sluice serve' printed as (protocol)`,
      { details: { host, port, answeredWith: 'http' } },
    )
  }

  private async resume(): Promise<void> {
    this.state = State.Resuming
    await this.events.resumed()
    // The connection may have dropped (or been closed) while consumers were being restored.
    if (this.currentState() !== State.Resuming) return
    this.state = State.Ready
    this.everConnected = true
    for (const waiter of this.readyWaiters.splice(0)) waiter.resolve()
    const queued = this.queue
    this.queue = []
    for (const request of queued) this.transmit(request)
  }

  private onFrame(frame: Frame): void {
    switch (frame.kind) {
      case FrameKind.Response: {
        const request = this.inFlight.get(frame.id)
        if (request === undefined) return
        this.inFlight.delete(frame.id)
        request.stopTimer()
        const body = asArray(frame.body, 'response')
        if (body[0] === true) request.resolve(body[1])
        else request.reject(errorFromWire(asObject(body[1], 'error') as never))
        return
      }
      case FrameKind.Deliver:
        this.events.deliver(frame.id, asArray(frame.body, 'deliveries'))
        return
      case FrameKind.LeaseLost:
        this.events.leaseLost(frame.id, asArray(frame.body, 'lost leases'))
        return
      case FrameKind.ConsumerClosed:
        this.events.consumerClosed(frame.id, errorFromWire(asObject(frame.body, 'consumer closed') as never))
        return
      case FrameKind.Goodbye:
        this.lastError = errorFromWire(asObject(frame.body, 'goodbye') as never)
        return
      default:
        return
    }
  }

  private onClose(socket: Socket): void {
    if (this.socket !== socket) return
    this.socket = null
    const wasClosing = this.state === State.Closed
    if (!wasClosing) this.state = State.Connecting
    for (const request of this.inFlight.values()) {
      if (request.retriable && !wasClosing) {
        this.queue.push(request)
      } else {
        request.stopTimer()
        request.reject(
          wasClosing
            ? sluiceError(ErrorCode.Closed, 'the client is closed')
            : sluiceError(
                ErrorCode.Unavailable,
                `the connection to the broker was lost during ${request.op}; it may or may not have been applied`,
                {
                  cause: this.lastError ?? undefined,
                },
              ),
        )
      }
    }
    this.inFlight.clear()
    this.events.disconnected()
    if (!wasClosing) void this.connectLoop()
  }

  /**
   * Sends a request; resolves with its result, or rejects with the broker's
   * error rebuilt. `waitMs` is how long the broker may legitimately hold it
   * (a publish waiting for room), added to the request timeout; such a
   * request does not count for `idle()`. An abort or a timeout of a sent
   * request tells the broker to stop its wait (CANCEL).
   */
  request(
    op: Op,
    args: unknown,
    options: { retriable?: boolean; urgent?: boolean; signal?: AbortSignal; waitMs?: number } = {},
  ): Promise<unknown> {
    if (this.state === State.Closed) return Promise.reject(sluiceError(ErrorCode.Closed, 'the client is closed'))
    const signal = options.signal
    if (signal?.aborted === true)
      return Promise.reject(sluiceError(ErrorCode.Aborted, `${op} aborted; nothing was sent`))
    const timeoutMs = this.options.requestTimeoutMs + (options.waitMs ?? 0)
    return new Promise((resolve, reject) => {
      const giveUp = (error: SluiceError): void => {
        request.stopTimer()
        signal?.removeEventListener('abort', onAbort)
        this.queue = this.queue.filter((r) => r !== request)
        if (this.inFlight.get(request.id) === request) {
          this.inFlight.delete(request.id)
          if (options.waitMs !== undefined) this.cancel(request.id)
        }
        reject(error)
      }
      const onAbort = (): void =>
        giveUp(sluiceError(ErrorCode.Aborted, `${op} aborted; if the broker had already applied it, it stays applied`))
      const request: Request = {
        op,
        args,
        retriable: options.retriable ?? false,
        waits: options.waitMs !== undefined,
        resolve: (value) => {
          signal?.removeEventListener('abort', onAbort)
          resolve(value)
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort)
          reject(err)
        },
        id: 0,
        stopTimer: systemClock.setTimer(
          () =>
            giveUp(
              sluiceError(ErrorCode.Timeout, `${op} got no answer from the broker within ${timeoutMs} ms`, {
                cause: this.lastError ?? undefined,
              }),
            ),
          timeoutMs,
        ),
      }
      signal?.addEventListener('abort', onAbort, { once: true })
      if (this.state === State.Ready || (options.urgent === true && this.state === State.Resuming))
        this.transmit(request)
      else this.queue.push(request)
    })
  }

  /** Tells the broker to stop waiting on request `id` (best effort: nothing is answered to anyone). */
  private cancel(id: number): void {
    if (this.state !== State.Ready) return
    const request: Request = {
      op: Op.Cancel,
      args: { request: id },
      retriable: false,
      waits: false,
      resolve: () => undefined,
      reject: () => undefined,
      id: 0,
      stopTimer: systemClock.setTimer(() => this.inFlight.delete(request.id), this.options.requestTimeoutMs),
    }
    this.transmit(request)
  }

  private transmit(request: Request): void {
    request.id = this.nextId
    this.nextId = this.nextId >= 0xffffffff ? 1 : this.nextId + 1
    this.inFlight.set(request.id, request)
    this.write(this.socket!, encodeFrame(FrameKind.Request, request.id, [request.op, request.args]))
  }

  /** Grants a consumer more deliveries (dropped while disconnected: the consumer grants again on resume). */
  credit(consumerId: number, n: number): void {
    if (this.socket !== null && (this.state === State.Ready || this.state === State.Resuming))
      this.write(this.socket, encodeFrame(FrameKind.Credit, consumerId, n))
  }

  /** Sends the frames written so far in this tick now, rather than at its end. */
  flushWrites(): void {
    const socket = this.corked
    if (socket === null) return
    this.corked = null
    socket.uncork()
  }

  /** Frames written in one tick (acks of handlers finishing together, credit, publishes) leave in one write. */
  private write(socket: Socket, frame: Buffer): void {
    if (this.corked !== socket) {
      this.corked = socket
      socket.cork()
      process.nextTick(() => {
        this.corked = null
        socket.uncork()
      })
    }
    socket.write(frame)
  }

  private currentState(): State {
    return this.state
  }

  /** Whether requests go out now. */
  get connected(): boolean {
    return this.state === State.Ready
  }

  /** Resolves once no request is waiting for an answer (for tests that step a fake clock). */
  async idle(): Promise<void> {
    const busy = (): boolean => [...this.inFlight.values()].some((r) => !r.waits)
    while (busy() || (this.queue.length > 0 && this.state === State.Ready)) {
      await new Promise((resolve) => setImmediate(resolve))
    }
  }

  close(): void {
    if (this.state === State.Closed) return
    this.state = State.Closed
    for (const request of this.queue) {
      request.stopTimer()
      request.reject(sluiceError(ErrorCode.Closed, 'the client is closed'))
    }
    this.queue = []
    this.socket?.end()
    const socket = this.socket
    setTimeout(() => socket?.destroy(), 1000).unref()
    // A reconnect attempt still in its handshake ends too: its WELCOME must not bring the client back.
    this.attempt?.destroy()
    // A wait before the next attempt ends now, not up to 5 s later: it would keep the process alive.
    if (this.backoff !== null) {
      clearTimeout(this.backoff.timer)
      this.backoff.wake()
      this.backoff = null
    }
  }
}
