import type { ClientJob } from '../peer.ts'

/**
 * What the bench's clients share. There is one module per system (a client
 * process loads only its own system's library), each used the way its
 * documentation recommends for throughput with confirmation: pipelined or
 * windowed single publishes, acknowledged consumption with a bounded number
 * of handlers.
 */

/** Runs `handle` for items with at most `limit` at once; resolves when all are done. */
export class Limiter {
  private running = 0
  private waiting: (() => void)[] = []
  constructor(private readonly limit: number) {}
  async run(work: () => Promise<void>): Promise<void> {
    while (this.running >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve))
    this.running++
    try {
      await work()
    } finally {
      this.running--
      this.waiting.shift()?.()
    }
  }
}

/** Publishes messages 0..count-1 (fewer if `pace` says stop) with at most `window` unconfirmed, via `send(i)`. */
export async function windowed(
  job: ClientJob,
  pace: () => Promise<boolean>,
  send: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(job.window, job.count) }, async () => {
      while (next < job.count) {
        // Claimed before waiting: another sender may take the next one meanwhile.
        const i = next++
        if (!(await pace())) return
        await send(i)
      }
    }),
  )
}
