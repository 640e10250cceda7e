import amqp from 'amqplib'
import type { Client } from '../peer.ts'
import { windowed } from './common.ts'

export async function client(connection: Record<string, unknown>): Promise<Client> {
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
