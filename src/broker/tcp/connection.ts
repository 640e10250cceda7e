// Over 500 lines: one client connection of the protocol, every op's decoding and its answer in one switch,
// with the connection's flow control; the op table is the seam to move out next.
import type { Socket } from 'node:net'
import { systemClock } from '../../core/clock.ts'
import type { Driver, DriverConsumer } from '../../core/driver.ts'
import { asSluiceError, ErrorCode, QueueFullError, SluiceError, sluiceError } from '../../core/errors.ts'
import type { RedriveOptions, RedriveResult } from '../../core/dead-letters.ts'
import { checkConsumerConfig } from '../../core/subscribe-options.ts'
import { checkCapabilities } from '../../core/capabilities.ts'
import { checkSubscriptionName, checkTopicConfig } from '../../core/validate.ts'
import { encodeFrame, FrameKind, FrameParser, protocolVersion, type Frame } from '../../protocol/frame.ts'
import { isOp, Op } from '../../protocol/ops.ts'
import {
  asArray,
  asInt,
  asObject,
  asString,
  decodeAppendRecord,
  decodeRef,
  decodeRefs,
  encodeReceipts,
  encodeRef,
  encodeStoredRecord,
  malformed,
} from '../../protocol/wire.ts'
import { messageBytes } from '../../core/message-size.ts'
import { PushConsumer } from './push-consumer.ts'

export interface ConnectionLimits {
  readonly maxFrameBytes: number
  /**
   * Requests handled at once; past it the broker stops reading from the
   * socket. Publishes waiting for room or a rate slot are not counted (so
   * they never hold the connection's acks hostage); `maxWaitingBytes` bounds them.
   */
  readonly maxInFlight: number
  /** Message bytes of publishes waiting for room or a rate slot; past it a waiting publish fails with QUEUE_FULL. */
  readonly maxWaitingBytes: number
  /** Bytes waiting to be written to a client that does not read; past it the client is cut off. */
  readonly maxBufferedBytes: number
  /**
   * Deliveries wait while more than a quarter of `maxBufferedBytes` (at most 4 MiB) waits to be written; a
   * client that does not take any of it for this long is cut off as stalled (its leases go back).
   */
  readonly stalledReaderMs: number
  /** Consumers one connection may open. */
  readonly maxConsumers: number
  /** How long a new connection has to say HELLO. */
  readonly helloTimeoutMs: number
  /**
   * Bytes of frames still arriving, across all connections of the broker;
   * past it the connection whose frame would go over is closed. Without it,
   * clients that send most of a large frame and then stall hold memory for ever.
   */
  readonly maxPartialFrameBytes: number
  /** How long a frame may take to arrive once it has begun; then the connection is closed. */
  readonly frameTimeoutMs: number
}

/** How often a wait for room in a client's send buffer looks at it again. */
const roomPollMs = 20

/** What a broker's connections hold, together, in frames still arriving. */
export class PartialFrames {
  held = 0
}

interface Running {
  readonly id: number
  /** Whether it is an append waiting for room or a rate slot. */
  waiting: boolean
  /** An append's cancel switch. */
  cancel: AbortController | null
  /** An append's message bytes. */
  bytes: number
}

export const defaultConnectionLimits: ConnectionLimits = {
  maxFrameBytes: 32 * 1024 * 1024,
  maxInFlight: 1024,
  maxWaitingBytes: 64 * 1024 * 1024,
  maxBufferedBytes: 64 * 1024 * 1024,
  stalledReaderMs: 10_000,
  maxConsumers: 1024,
  helloTimeoutMs: 10_000,
  maxPartialFrameBytes: 256 * 1024 * 1024,
  frameTimeoutMs: 60_000,
}

/**
 * One client connection on the broker: handshake, requests (pipelined,
 * answered by id), consumers pushed against credit. Anything malformed
 * closes this connection only; nothing a client sends can throw out of here.
 */
export class Connection {
  private readonly parser: FrameParser
  private greeted = false
  private inFlight = 0
  /** Appends waiting for room or a rate slot, by request id: their cancel switch. */
  private readonly waiting = new Map<number, AbortController>()
  private waitingBytes = 0
  private paused = false
  private closed = false
  private corked = false
  /** The wait for room in the send buffer, while there is one (see sendRoom). */
  private roomWait: Promise<void> | null = null
  private readonly consumers = new Map<number, PushConsumer>()
  /**
   * Credit sent for consumers whose OPEN_CONSUMER is still being handled (the engine opens them
   * asynchronously): frames are ordered, so a client may grant right behind the open, and that credit
   * counts once the consumer exists. Dropping it left a reconnected consumer waiting for ever.
   */
  private readonly opening = new Map<number, number>()
  /**
   * What each consumer id was opened for, and when its open is done (fails or succeeds): a repeat of an
   * OPEN_CONSUMER whose answer the client stopped waiting for is the same consumer, not a conflict.
   */
  private readonly opened = new Map<number, { topic: string; subscription: string; done: Promise<unknown> }>()
  /** Redrives running for this connection, by request id: their stop switch. */
  private readonly redrives = new Map<number, AbortController>()
  private idleWaiters: (() => void)[] = []
  /** This connection's share of `partialFrames`, and the timer of the frame still arriving. */
  private partialBytes = 0
  /** When the frame now arriving began (Date.now()), 0 when none is. */
  private partialSince = 0
  /** Cancels the frame timer (on the capped clock), while one is armed. */
  private frameTimer: (() => void) | null = null

  constructor(
    private readonly socket: Socket,
    private readonly driver: Driver,
    private readonly limits: ConnectionLimits,
    private readonly onClose: (connection: Connection) => void,
    private readonly partialFrames: PartialFrames = new PartialFrames(),
  ) {
    this.parser = new FrameParser(
      limits.maxFrameBytes,
      `raise it on the broker with 'sluice serve --max-frame-bytes <n>' (env SLUICE_MAX_FRAME_BYTES), or send smaller frames (smaller publish batches)`,
    )
    socket.setNoDelay(true)
    socket.on('data', (data: Buffer) => this.onData(data))
    socket.on('error', () => undefined)
    socket.on('close', () => void this.teardown())
    // A connection that never says HELLO would hold a connection slot for ever.
    // On the capped clock: a limit past 2^31-1 ms must not become a 1 ms timer.
    const stopHelloTimer = systemClock.setTimer(() => {
      if (!this.greeted) this.goodbye(sluiceError(ErrorCode.Protocol, `no HELLO within ${limits.helloTimeoutMs} ms`))
    }, limits.helloTimeoutMs)
    socket.once('close', stopHelloTimer)
  }

  get remote(): string {
    return `${this.socket.remoteAddress ?? '?'}:${this.socket.remotePort ?? '?'}`
  }

  private onData(data: Buffer): void {
    if (this.closed) return
    let frames: Frame[]
    try {
      frames = this.parser.push(data)
    } catch (err) {
      this.goodbye(asSluiceError(err, ErrorCode.Protocol))
      return
    }
    if (!this.holdPartial(this.parser.pendingBytes, frames.length > 0)) return
    for (const frame of frames) {
      try {
        this.onFrame(frame)
      } catch (err) {
        this.goodbye(asSluiceError(err, ErrorCode.Protocol))
        return
      }
    }
    // Good frames before a bad one were handled; now the bad one ends the connection.
    try {
      this.parser.throwIfFailed()
    } catch (err) {
      this.goodbye(asSluiceError(err, ErrorCode.Protocol))
    }
  }

  private onFrame(frame: Frame): void {
    if (!this.greeted) {
      if (frame.kind !== FrameKind.Hello) malformed('connection: the first frame must be HELLO')
      const hello = asObject(frame.body, 'hello')
      const version = asInt(hello['version'], 'hello version')
      if (version !== protocolVersion) {
        throw sluiceError(
          ErrorCode.Protocol,
          `protocol version ${version} is not supported; this broker speaks version ${protocolVersion}`,
        )
      }
      this.greeted = true
      this.send(FrameKind.Welcome, 0, {
        version: protocolVersion,
        maxFrameBytes: this.limits.maxFrameBytes,
        capabilities: this.driver.capabilities,
      })
      return
    }
    switch (frame.kind) {
      case FrameKind.Request:
        this.startRequest(frame)
        return
      case FrameKind.Credit: {
        const consumer = this.consumers.get(frame.id)
        const n = asInt(frame.body, 'credit')
        const early = this.opening.get(frame.id)
        if (consumer !== undefined) consumer.grant(n)
        else if (early !== undefined) this.opening.set(frame.id, Math.min(early + n, 1_000_000))
        return
      }
      default:
        malformed(`connection: unexpected frame kind ${frame.kind} from a client`)
    }
  }

  private startRequest(frame: Frame): void {
    const body = asArray(frame.body, 'request')
    const op = body[0]
    if (!isOp(op)) malformed(`request: unknown operation ${JSON.stringify(op)}`)
    const args = asObject(body[1] ?? {}, `${op} arguments`)
    const request: Running = { id: frame.id, waiting: false, cancel: null, bytes: 0 }
    this.busier(1)
    this.handle(op, args, request).then(
      (result) => this.respond(request, [true, result]),
      (err: unknown) => {
        // A waiting append stopped by the broker (too many waiting) fails with the reason it was given.
        const reason: unknown = request.cancel?.signal.aborted === true ? request.cancel.signal.reason : undefined
        const error = reason instanceof SluiceError ? reason : err instanceof SluiceError ? err : asSluiceError(err)
        if (error.code === ErrorCode.Protocol) {
          this.goodbye(error)
          return
        }
        this.respond(request, [false, error.toJSON()])
      },
    )
  }

  /** Counts requests being worked on; pauses reading past the limit and resumes below half of it. */
  private busier(by: number): void {
    this.inFlight += by
    if (!this.paused && this.inFlight >= this.limits.maxInFlight) {
      this.paused = true
      this.socket.pause()
    } else if (this.paused && this.inFlight < this.limits.maxInFlight / 2) {
      this.paused = false
      this.socket.resume()
    }
  }

  /** An append started waiting: it stops counting as busy (acks behind it must get through), and may be cancelled. */
  private startedWaiting(request: Running): void {
    if (request.waiting || request.cancel === null) return
    request.waiting = true
    this.waiting.set(request.id, request.cancel)
    this.waitingBytes += request.bytes
    this.busier(-1)
    if (this.waitingBytes > this.limits.maxWaitingBytes) {
      request.cancel.abort(
        new QueueFullError(
          `this connection's publishes waiting for room or a rate slot hold more than ${this.limits.maxWaitingBytes} bytes; nothing was stored, retry later`,
          1000,
        ),
      )
    }
  }

  private respond(request: Running, body: unknown): void {
    if (request.waiting) {
      this.waiting.delete(request.id)
      this.waitingBytes -= request.bytes
    } else this.busier(-1)
    this.send(FrameKind.Response, request.id, body)
    if (this.inFlight === 0) {
      for (const wake of this.idleWaiters.splice(0)) wake()
    }
  }

  private consumer(args: Record<string, unknown>): PushConsumer {
    const id = asInt(args['consumer'], 'consumer id')
    const consumer = this.consumers.get(id)
    if (consumer === undefined) throw sluiceError(ErrorCode.Closed, `consumer ${id} is not open on this connection`)
    return consumer
  }

  private async handle(op: string, args: Record<string, unknown>, request: Running): Promise<unknown> {
    const d = this.driver
    switch (op) {
      case Op.CreateTopic: {
        // Checked here as core checks it: a client need not be a Sluice, and the runtime behind may be any driver.
        const name = asString(args['name'], 'topic name')
        const config = checkTopicConfig(args['config'] ?? {})
        checkCapabilities(d.capabilities, { topic: config })
        return d.createTopic(name, config)
      }
      case Op.DescribeTopic:
        return d.describeTopic(asString(args['name'], 'topic name'))
      case Op.ListTopics:
        return d.listTopics()
      case Op.DeleteTopic:
        await d.deleteTopic(asString(args['name'], 'topic name'))
        return null
      case Op.Append: {
        const producer = args['producer'] === undefined ? null : asString(args['producer'], 'producer')
        const records = asArray(args['records'], 'records').map((r) => decodeAppendRecord(r, producer))
        const delayed = d.capabilities.delayedDelivery ? undefined : records.find((r) => r.deliverAt > 0)
        if (delayed !== undefined) checkCapabilities(d.capabilities, { publish: { deliverAt: delayed.deliverAt } })
        const timeoutMs = args['timeoutMs']
        request.cancel = new AbortController()
        // Keys and headers count too: they can be as large as payloads.
        for (const r of records) request.bytes += messageBytes(r.key, r.headers, r.payload.length) + 64
        const receipts = await d.append(asString(args['topic'], 'topic'), records, {
          timeoutMs: timeoutMs === undefined || timeoutMs === null ? undefined : asInt(timeoutMs, 'timeoutMs'),
          signal: request.cancel.signal,
          onWait: () => this.startedWaiting(request),
        })
        return encodeReceipts(receipts)
      }
      case Op.Cancel: {
        // Unknown ids are fine: the append or redrive may have finished before the cancel arrived.
        const id = asInt(args['request'], 'request id')
        this.waiting.get(id)?.abort()
        this.redrives.get(id)?.abort()
        return null
      }
      case Op.Redrive:
        return this.redrive(args, request)
      case Op.Read: {
        const records = await d.read(
          asString(args['topic'], 'topic'),
          asInt(args['partition'], 'partition'),
          asInt(args['from'], 'from'),
          asInt(args['max'], 'max'),
        )
        return records.map(encodeStoredRecord)
      }
      case Op.Peek: {
        checkCapabilities(d.capabilities, { peek: true })
        // Reserved subscription names are allowed: a peek changes nothing, and deadLetters lists by `_redrive`.
        const records = await d.peek(
          asString(args['topic'], 'topic'),
          asString(args['subscription'], 'subscription'),
          asInt(args['max'], 'max'),
        )
        return records.map(encodeStoredRecord)
      }
      case Op.DeleteSubscription:
        // Reserved names (the `_redrive` subscription) are Sluice's own: no client may change them.
        await d.deleteSubscription(asString(args['topic'], 'topic'), checkSubscriptionName(args['subscription']))
        return null
      case Op.Stats: {
        const target = args['targetTimeToEmptyMs']
        return d.stats(
          asString(args['topic'], 'topic'),
          target === undefined ? {} : { targetTimeToEmptyMs: asInt(target, 'targetTimeToEmptyMs') },
        )
      }
      case Op.OpenConsumer:
        return this.openConsumer(args)
      case Op.CloseConsumer: {
        const consumer = this.consumer(args)
        const handed = args['handed'] === undefined ? undefined : decodeRefs(args['handed'])
        this.consumers.delete(consumer.id)
        this.opened.delete(consumer.id)
        await consumer.close(handed)
        return null
      }
      case Op.Ack: {
        const refs = decodeRefs(args['refs'])
        return this.consumer(args).consumer.ack(refs)
      }
      case Op.Nack: {
        const delay = args['delayMs']
        const refs = decodeRefs(args['refs'])
        return this.consumer(args).consumer.nack(
          refs,
          delay === null || delay === undefined ? null : asInt(delay, 'delayMs'),
          typeof args['reason'] === 'string' ? args['reason'].slice(0, 1000) : 'nacked by the consumer',
        )
      }
      case Op.Extend: {
        const refs = decodeRefs(args['refs'])
        return this.consumer(args).consumer.extend(refs, asInt(args['ms'], 'ms'))
      }
      case Op.Release: {
        const refs = decodeRefs(args['refs'])
        await this.consumer(args).consumer.release(refs)
        return null
      }
      case Op.Commit: {
        checkCapabilities(d.capabilities, { transaction: true })
        const outputs = asArray(args['outputs'], 'outputs').map((value) => {
          const output = asObject(value, 'output')
          return {
            topic: asString(output['topic'], 'output topic'),
            records: asArray(output['records'], 'output records').map((r) => decodeAppendRecord(r)),
          }
        })
        return this.consumer(args).consumer.commit(
          decodeRef(args['ref']),
          outputs,
          asString(args['txId'], 'transaction id'),
        )
      }
    }
    return malformed(`request: unknown operation ${op}`)
  }

  /** Runs a redrive in the engine; stopped between moves by a CANCEL of it or the connection dropping. */
  private async redrive(args: Record<string, unknown>, request: Running): Promise<RedriveResult> {
    const options = args['options'] ?? {}
    const checked = asObject(options, 'redrive options') as RedriveOptions
    const stop = new AbortController()
    this.redrives.set(request.id, stop)
    try {
      return await this.driver.redrive(asString(args['topic'], 'topic'), checked, stop.signal)
    } finally {
      this.redrives.delete(request.id)
    }
  }

  private openConsumer(args: Record<string, unknown>): Promise<null> {
    const id = asInt(args['consumer'], 'consumer id')
    const topic = asString(args['topic'], 'topic')
    // Reserved names (the `_redrive` subscription) are Sluice's own: a client consuming one would take dead letters.
    const subscription = checkSubscriptionName(args['subscription'])
    const earlier = this.opened.get(id)
    if (earlier === undefined || !(this.consumers.has(id) || this.opening.has(id))) {
      const done = this.openNewConsumer(id, topic, subscription, args)
      this.opened.set(id, { topic, subscription, done })
      done.catch(() => {
        if (this.opened.get(id)?.done === done) this.opened.delete(id)
      })
      return done
    }
    if (earlier.topic !== topic || earlier.subscription !== subscription)
      throw sluiceError(
        ErrorCode.Conflict,
        `consumer ${id} is already open on this connection, for ${earlier.topic}/${earlier.subscription}`,
      )
    return this.reopenConsumer(id, earlier.done, args)
  }

  /**
   * The client sent OPEN_CONSUMER again for a consumer this connection has (or is opening): it gave up
   * waiting for the first answer (a request timeout) and tries again. Once the first open is done the
   * answer is the same consumer, with the repeat's credit added (the client counts its credit from the
   * repeat); if the first failed, this one opens it afresh.
   */
  private async reopenConsumer(id: number, first: Promise<unknown>, args: Record<string, unknown>): Promise<null> {
    await first.catch(() => undefined)
    const push = this.consumers.get(id)
    if (push === undefined) return this.openConsumer(args)
    const credit = args['credit'] === undefined ? 0 : asInt(args['credit'], 'credit')
    if (credit > 0) push.grant(credit)
    return null
  }

  private async openNewConsumer(
    id: number,
    topic: string,
    subscription: string,
    args: Record<string, unknown>,
  ): Promise<null> {
    // Consumers still being opened count: pipelined OPEN_CONSUMERs are handled at once, and would all pass.
    if (this.consumers.size + this.opening.size >= this.limits.maxConsumers) {
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `a connection may open at most ${this.limits.maxConsumers} consumers`,
      )
    }
    const config = checkConsumerConfig(args['config'])
    checkCapabilities(this.driver.capabilities, { consumer: config })
    const credit = args['credit'] === undefined ? 0 : asInt(args['credit'], 'credit')
    this.opening.set(id, 0)
    let engineConsumer: DriverConsumer
    let early: number
    try {
      engineConsumer = await this.driver.openConsumer(topic, subscription, config)
    } finally {
      early = this.opening.get(id) ?? 0
      this.opening.delete(id)
    }
    if (this.closed) {
      await engineConsumer.close()
      throw sluiceError(ErrorCode.Closed, 'the connection closed')
    }
    engineConsumer.onLeaseLost((ref) => this.send(FrameKind.LeaseLost, id, [encodeRef(ref)]))
    // Ended by the driver (its subscription or topic deleted): the client hears it now, not at its next request.
    engineConsumer.onClosed((reason) => {
      const push = this.consumers.get(id)
      if (push?.consumer !== engineConsumer) return
      this.consumers.delete(id)
      this.opened.delete(id)
      push.pause()
      this.send(FrameKind.ConsumerClosed, id, reason.toJSON())
    })
    const push = new PushConsumer(
      id,
      engineConsumer,
      (consumerId, records) => this.send(FrameKind.Deliver, consumerId, records),
      () => this.sendRoom(),
    )
    this.consumers.set(id, push)
    if (credit + early > 0) push.grant(credit + early)
    return null
  }

  /** Writes a frame; frames of one tick leave in one write. A client that lets too much pile up is cut off. */
  private send(kind: FrameKind, id: number, body: unknown): void {
    if (this.closed) return
    if (!this.corked) {
      this.corked = true
      this.socket.cork()
      process.nextTick(() => {
        this.corked = false
        this.socket.uncork()
      })
    }
    this.socket.write(encodeFrame(kind, id, body))
    if (this.socket.writableLength > this.limits.maxBufferedBytes) {
      // A slow consumer: its leases go back to the subscription when the connection closes.
      this.closed = true
      this.socket.destroy()
    }
  }

  /**
   * Null while little waits to be written to this client; else a wait, shared by the connection's consumers,
   * that ends once the client has taken enough (or the connection closes). The client is cut off as stalled
   * when it makes no progress for `stalledReaderMs` while a consumer still has deliveries to push. (Polled:
   * Node says 'drain' only once all that waits is gone.)
   */
  private sendRoom(): Promise<void> | null {
    const pauseAt = Math.min(4 * 1024 * 1024, this.limits.maxBufferedBytes / 4)
    if (this.closed || this.socket.writableLength <= pauseAt) return null
    this.roomWait ??= new Promise<void>((resolve) => {
      let lowest = this.socket.writableLength
      let read = this.socket.bytesRead
      let progressAt = performance.now()
      const check = (): void => {
        const waiting = this.socket.writableLength
        if (this.closed || waiting <= pauseAt) return done()
        // Progress: a frame taken whole (Node counts a write as waiting until all of it is sent), or anything
        // from the client (acks, credit: a client that handles what it gets is reading it).
        if (waiting < lowest || this.socket.bytesRead > read) {
          lowest = Math.min(lowest, waiting)
          read = this.socket.bytesRead
          progressAt = performance.now()
        } else if (performance.now() - progressAt >= this.limits.stalledReaderMs && this.pushing()) {
          // Stop every consumer first: none may lease more for a connection about to go.
          this.stopDelivering()
          this.closed = true
          this.socket.destroy()
          done()
        }
      }
      const done = (): void => {
        clearInterval(poll)
        this.socket.off('close', done)
        this.roomWait = null
        resolve()
      }
      const poll = setInterval(check, roomPollMs)
      this.socket.on('close', done)
    })
    return this.roomWait
  }

  /** Whether a consumer of this connection still has deliveries to push. */
  private pushing(): boolean {
    for (const consumer of this.consumers.values()) if (consumer.active) return true
    return false
  }

  private goodbye(error: SluiceError): void {
    if (this.closed) return
    this.send(FrameKind.Goodbye, 0, error.toJSON())
    this.closed = true
    this.socket.end()
    setTimeout(() => this.socket.destroy(), 1000).unref()
  }

  /** Stops pushing deliveries and running redrives; requests (acks) still land. For graceful shutdown. */
  stopDelivering(): void {
    for (const consumer of this.consumers.values()) consumer.pause()
    // A redrive is deliveries too: it stops between moves and answers what it moved.
    for (const stop of this.redrives.values()) stop.abort()
  }

  /** Resolves when no request is being handled. */
  idle(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /** Closes the connection, telling the client why. */
  close(reason: SluiceError): void {
    this.goodbye(reason)
  }

  /**
   * Accounts for the bytes of a frame still arriving; false (the connection
   * closed) when they would take the broker past maxPartialFrameBytes.
   * `completed`: frames before it just ended, so the frame now arriving began now.
   */
  private holdPartial(pending: number, completed = false): boolean {
    this.partialFrames.held += pending - this.partialBytes
    this.partialBytes = pending
    if (pending === 0) {
      this.partialSince = 0
      return true
    }
    if (completed || this.partialSince === 0) this.partialSince = Date.now()
    if (this.partialFrames.held > this.limits.maxPartialFrameBytes) {
      this.goodbye(
        sluiceError(
          ErrorCode.Protocol,
          `the broker holds more than ${this.limits.maxPartialFrameBytes} bytes of frames still arriving; send whole frames without stalling`,
        ),
      )
      this.holdPartial(0)
      return false
    }
    // One timer at a time, checked when it fires (not re-armed on every chunk of a busy connection).
    if (this.frameTimer === null) this.armFrameTimer(this.limits.frameTimeoutMs)
    return true
  }

  private armFrameTimer(ms: number): void {
    this.frameTimer = systemClock.setTimer(() => {
      this.frameTimer = null
      if (this.partialSince === 0 || this.closed) return
      const left = this.partialSince + this.limits.frameTimeoutMs - Date.now()
      if (left > 0) {
        this.armFrameTimer(left)
        return
      }
      this.goodbye(
        sluiceError(ErrorCode.Protocol, `a frame took longer than ${this.limits.frameTimeoutMs} ms to arrive`),
      )
      this.holdPartial(0)
    }, ms)
  }

  private async teardown(): Promise<void> {
    this.holdPartial(0)
    this.frameTimer?.()
    this.closed = true
    const consumers = [...this.consumers.values()]
    this.consumers.clear()
    this.opened.clear()
    // Nobody is left to answer: waiting publishes end unstored (a client that reconnects sends them again).
    for (const cancel of this.waiting.values()) cancel.abort()
    // Nobody is left to tell what moved: a redrive stops between moves (each move is whole).
    for (const stop of this.redrives.values()) stop.abort()
    for (const wake of this.idleWaiters.splice(0)) wake()
    await Promise.all(consumers.map((c) => c.close().catch(() => undefined)))
    this.onClose(this)
  }
}
