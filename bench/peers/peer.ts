/**
 * A system the bench compares: Sluice through its broker, or a peer on its
 * standard port. Setup and teardown run in the bench's own process; the
 * clients run in child processes (bench/peers/client.ts), as users run them.
 */
export interface Peer {
  /** Short name in the table, e.g. "redis-streams". */
  readonly name: string
  /** What an acknowledged publish survives, stated next to its figures. */
  readonly durability: string
  /** Whether it keeps per-key order for the key-ordered scenario; else what it offers instead. */
  readonly keyOrdering: string
  /** Why it is skipped, or null when it is reachable. */
  unavailable(): Promise<string | null>
  /** Creates `queue` fresh (deleting any old one) with `subscribers` independent subscriptions named s0, s1, ... */
  setup(queue: string, subscribers: number): Promise<void>
  teardown(queue: string): Promise<void>
  /** Connection settings a client process needs (JSON-serialisable). */
  readonly connection: Record<string, unknown>
}

/** What a client process does with one peer; `sys` picks the implementation in client.ts. */
export interface ClientJob {
  readonly sys: string
  readonly connection: Record<string, unknown>
  readonly queue: string
  readonly role: 'produce' | 'consume'
  readonly payloadBytes: number
  /** produce: messages to publish (all confirmed); consume: messages to receive before finishing. */
  readonly count: number
  /**
   * At most this long: a producer stops sending, a consumer stops and reports what it handled by then
   * (ClientResult.count is what was really done).
   */
  readonly seconds?: number
  /**
   * produce: publish this long first without counting it, so that a run measures the system and its
   * client once warm (JIT-compiled, connections and buffers grown), not their start.
   */
  readonly warmupSeconds?: number
  /** produce: publishes in flight; consume: handlers at once. */
  readonly window: number
  /** produce: a steady rate in msgs/s instead of as fast as possible (payloads carry their send time). */
  readonly rate?: number
  /** produce: keys, message i gets key `k${floor(i / 4) % keys}` (runs of 4 per key). */
  readonly keys?: number
  /** consume: which subscription (s0 by default). */
  readonly subscription?: string
  /** consume: handler time in ms (1 ms for the key-ordered scenario). */
  readonly handlerMs?: number
  /** consume: record publish-to-handler latency from the payload's send time. */
  readonly latency?: boolean
  /** consume: check per-key order (payload carries key index and sequence). */
  readonly checkOrder?: boolean
}

export interface ClientResult {
  readonly count: number
  /** From the start of its work (connected, subscribed) to its end; process start-up is not counted. */
  readonly seconds: number
  readonly msgsPerSec: number
  /** Wall-clock ms (performance.timeOrigin-based) when its work began and ended, comparable across processes. */
  readonly startedAt: number
  readonly endedAt: number
  readonly p50Ms?: number
  readonly p99Ms?: number
  readonly p999Ms?: number
  readonly orderViolations?: number
}

/** Sends to consumers from a client: what every system's client implements. */
export interface Client {
  /**
   * Publishes up to `count` messages, `window` unconfirmed at most; `make(i)` builds message i. `pace()`
   * waits for the next send's turn at a steady rate, and answers false once `job.seconds` are up: then no
   * more are sent (those sent are still awaited).
   */
  produce(
    job: ClientJob,
    make: (i: number) => { payload: Buffer; key: string | null },
    pace: () => Promise<boolean>,
  ): Promise<void>
  /**
   * Receives until `job.count` messages were handled and acknowledged; calls `ready` once it is
   * subscribed, so that producers start only then (and a consumer's start-up is not timed).
   */
  consume(job: ClientJob, handle: (payload: Buffer) => Promise<void>, ready: () => void): Promise<void>
  close(): Promise<void>
}
