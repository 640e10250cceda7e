import { open } from '../../../src/index.ts'
import type { Client } from '../peer.ts'
import { windowed } from './common.ts'

export async function client(connection: Record<string, unknown>): Promise<Client> {
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
