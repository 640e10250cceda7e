import { Queue, Worker } from 'bullmq'
import type { Client } from '../peer.ts'

export function client(connection: Record<string, unknown>): Promise<Client> {
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
            if (!(await pace())) return
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
