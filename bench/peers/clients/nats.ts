import { jetstream } from '@nats-io/jetstream'
import { connect as natsConnect } from '@nats-io/transport-node'
import type { Client } from '../peer.ts'
import { Limiter, windowed } from './common.ts'

export async function client(connection: Record<string, unknown>): Promise<Client> {
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
