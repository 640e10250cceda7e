// Bench consumer process: `sluice-consumer.ts <url> <topic> <subscription> <count> [latency]`
// Prints "ready" once subscribed, then one JSON line when `count` messages are handled:
// { received, seconds (from the first message), latencyNs?: number[] (sampled publish-to-handler) }.
import { open } from '../../src/index.ts'

const [url, topic, subscription, countArg, latencyArg] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string | undefined,
]
const count = Number(countArg)
const measureLatency = latencyArg === 'latency'
const sluice = await open({ url })
let received = 0
let first = 0n
const latencies: number[] = []
let finish!: () => void
const done = new Promise<void>((resolve) => (finish = resolve))
await sluice.subscribe<Buffer>(
  topic,
  subscription,
  (m) => {
    const now = process.hrtime.bigint()
    if (first === 0n) first = now
    if (measureLatency) latencies.push(Number(now - m.data.readBigInt64BE(0)))
    if (++received === count) finish()
  },
  { concurrency: 64, prefetch: 512, ordering: 'none', startAt: 'earliest' },
)
process.stdout.write('ready\n')
await done
const seconds = Number(process.hrtime.bigint() - first) / 1e9
process.stdout.write(`${JSON.stringify({ received, seconds, latencyNs: measureLatency ? latencies : undefined })}\n`)
await sluice.close()
