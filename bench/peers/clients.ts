import { jetstream } from '@nats-io/jetstream'
import { connect as natsConnect } from '@nats-io/transport-node'
import amqp from 'amqplib'
import { Queue, Worker } from 'bullmq'
import { Redis } from 'ioredis'
import { open } from '../../src/index.ts'
import type { Client, ClientJob } from './peer.ts'

/**
 * One client per system, each used the way its documentation recommends for
 * throughput with confirmation: pipelined or windowed single publishes,
 * acknowledged consumption with a bounded number of handlers.
 */

/** Runs `handle` for items with at most `limit` at once; resolves when all are done. */
class Limiter {
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

/** Publishes messages 0..count-1 with at most `window` unconfirmed, via `send(i)`. */
async function windowed(
  job: ClientJob,
  pace: () => Promise<void>,
  send: (i: number) => Promise<unknown>,
): Promise<void> {
  let next = 0
  await Promise.all(
    Array.from({ length: Math.min(job.window, job.count) }, async () => {
      while (next < job.count) {
        const i = next++
        await pace()
        await send(i)
      }
    }),
  )
}

export function redisStreamsClient(connection: Record<string, unknown>): Promise<Client> {
  const redis = new Redis({ host: '127.0.0.1', port: Number(connection['port']), enableAutoPipelining: true })
  // Blocking reads get a connection of their own (a BLOCK would stall the pipelined one).
  const reader = new Redis({ host: '127.0.0.1', port: Number(connection['port']) })
  return Promise.resolve(redisStreams(redis, reader))
}

function redisStreams(redis: Redis, reader: Redis): Client {
  return {
    async produce(job, make, pace) {
      await windowed(job, pace, (i) => {
        const m = make(i)
        return redis.xadd(job.queue, '*', 'k', m.key ?? '', 'p', m.payload)
      })
    },
    async consume(job, handle, ready) {
      const group = job.subscription ?? 's0'
      const consumer = `c${process.pid}`
      const limiter = new Limiter(job.window)
      let received = 0
      ready() // the group was created at setup: nothing published before the first read is missed
      while (received < job.count) {
        const reply = (await reader.callBuffer('XREADGROUP', [
          'GROUP',
          group,
          consumer,
          'COUNT',
          Math.max(100, job.window),
          'BLOCK',
          1000,
          'STREAMS',
          job.queue,
          '>',
        ])) as [Buffer, [Buffer, Buffer[]][]][] | null
        const entries = reply?.[0]?.[1] ?? []
        const ids: Buffer[] = []
        await Promise.all(
          entries.map(([id, fields]) =>
            limiter.run(async () => {
              await handle(fields[3]!)
              ids.push(id)
            }),
          ),
        )
        if (ids.length > 0) await redis.xack(job.queue, group, ...ids)
        received += entries.length
      }
    },
    close() {
      redis.disconnect()
      reader.disconnect()
      return Promise.resolve()
    },
  }
}

export async function natsClient(connection: Record<string, unknown>): Promise<Client> {
  const nc = await natsConnect({ servers: `127.0.0.1:${Number(connection['port'])}` })
  const js = jetstream(nc)
  return {
    async produce(job, make, pace) {
      await windowed(job, pace, (i) => js.publish(job.queue, make(i).payload))
    },
    async consume(job, handle, ready) {
      const consumer = await js.consumers.get(job.queue, job.subscription ?? 's0')
      const messages = await consumer.consume({ max_messages: Math.max(job.window * 2, 256) })
      ready()
      const limiter = new Limiter(job.window)
      let received = 0
      for await (const m of messages) {
        void limiter.run(async () => {
          await handle(Buffer.from(m.data.buffer, m.data.byteOffset, m.data.byteLength))
          m.ack()
          // The last one ends the iteration (which else waits for a next message).
          if (++received === job.count) void messages.close()
        })
      }
    },
    async close() {
      await nc.drain()
    },
  }
}

export async function rabbitClient(connection: Record<string, unknown>): Promise<Client> {
  const conn = await amqp.connect(`amqp://guest:guest@127.0.0.1:${Number(connection['port'])}`)
  return {
    async produce(job, make, pace) {
      const ch = await conn.createConfirmChannel()
      await windowed(job, pace, (i) => {
        return new Promise<void>((resolve, reject) => {
          ch.publish(job.queue, '', make(i).payload, { persistent: true }, (err) =>
            err === null || err === undefined ? resolve() : reject(err as Error),
          )
        })
      })
      await ch.close()
    },
    async consume(job, handle, ready) {
      const ch = await conn.createChannel()
      await ch.prefetch(job.window)
      let received = 0
      await new Promise<void>((resolve, reject) => {
        void ch
          .consume(`${job.queue}.${job.subscription ?? 's0'}`, (msg) => {
            if (msg === null) return
            handle(msg.content).then(() => {
              ch.ack(msg)
              if (++received === job.count) resolve()
            }, reject)
          })
          .then(ready, reject)
      })
      await ch.close()
    },
    async close() {
      await conn.close()
    },
  }
}

export function bullmqClient(connection: Record<string, unknown>): Promise<Client> {
  const redisConnection = { host: '127.0.0.1', port: Number(connection['port']) }
  const queues: Queue[] = []
  return Promise.resolve({
    async produce(job, make, pace) {
      const queue = new Queue(job.queue, { connection: redisConnection })
      queues.push(queue)
      // addBulk is BullMQ's batched publish: chunks of 100, `window / 100` chunks in flight.
      const chunk = 100
      let next = 0
      await Promise.all(
        Array.from({ length: Math.max(1, Math.floor(job.window / chunk)) }, async () => {
          while (next < job.count) {
            const from = next
            next = Math.min(job.count, next + chunk)
            await pace()
            await queue.addBulk(
              Array.from({ length: next - from }, (_, j) => ({
                name: 'm',
                data: { p: make(from + j).payload.toString('base64') },
                opts: { removeOnComplete: true },
              })),
            )
          }
        }),
      )
    },
    async consume(job, handle, ready) {
      let received = 0
      let worker!: Worker
      await new Promise<void>((resolve) => {
        worker = new Worker(
          job.queue,
          async (j: { data: { p: string } }) => {
            await handle(Buffer.from(j.data.p, 'base64'))
            if (++received === job.count) resolve()
          },
          { connection: redisConnection, concurrency: job.window },
        )
        void worker.waitUntilReady().then(ready)
      })
      await worker.close()
    },
    async close() {
      for (const q of queues) await q.close()
    },
  })
}

export async function sluiceClient(connection: Record<string, unknown>): Promise<Client> {
  const sluice = await open({ url: String(connection['url']) })
  return {
    async produce(job, make, pace) {
      await windowed(job, pace, (i) => {
        const m = make(i)
        return sluice.publish(job.queue, m.payload, { key: m.key })
      })
    },
    async consume(job, handle, ready) {
      let received = 0
      await new Promise<void>((resolve, reject) => {
        sluice
          .subscribe<Buffer>(
            job.queue,
            job.subscription ?? 's0',
            async (m) => {
              await handle(m.data)
              if (++received === job.count) resolve()
            },
            {
              concurrency: job.window,
              startAt: 'earliest',
              ordering: job.checkOrder === true ? 'key' : 'none',
            },
          )
          .then(ready, reject)
      })
    },
    async close() {
      await sluice.close({ drain: false, timeoutMs: 1000 })
    },
  }
}

export const clients: Record<string, (connection: Record<string, unknown>) => Promise<Client>> = {
  sluice: sluiceClient,
  'redis-streams': redisStreamsClient,
  nats: natsClient,
  rabbitmq: rabbitClient,
  bullmq: bullmqClient,
}
