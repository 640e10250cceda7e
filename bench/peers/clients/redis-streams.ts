import { Redis } from 'ioredis'
import type { Client } from '../peer.ts'
import { Limiter, windowed } from './common.ts'

export function client(connection: Record<string, unknown>): Promise<Client> {
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
