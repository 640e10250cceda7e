// Bench producer process: `sluice-producer.ts <url> <topic> <mode> <count> [rate]`
//   mode "window": one message per publish, 64 in flight; "batch": publishBatch of 100, 8 in flight;
//   "steady": `rate` msgs/s, one per publish, each payload carrying its send time (hrtime ns).
// Prints one JSON line: { sent, seconds, msgsPerSec }.
import { open } from '../../src/index.ts'

const [url, topic, mode, countArg, rateArg] = process.argv.slice(2) as [
  string,
  string,
  string,
  string,
  string | undefined,
]
const count = Number(countArg)
const sluice = await open({ url })
const payload = Buffer.alloc(1024, 7)
const start = process.hrtime.bigint()
let sent = 0
if (mode === 'window' || mode === 'batch') {
  const batch = mode === 'batch' ? 100 : 1
  const inFlight = mode === 'batch' ? 8 : 64
  const messages = Array.from({ length: batch }, () => ({ data: payload }))
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (sent < count) {
        sent += batch
        if (batch === 1) await sluice.publish(topic, payload)
        else await sluice.publishBatch(topic, messages)
      }
    }),
  )
} else {
  const rate = Number(rateArg)
  const pending: Promise<unknown>[] = []
  while (sent < count) {
    const elapsedS = Number(process.hrtime.bigint() - start) / 1e9
    const due = Math.min(count, Math.floor(elapsedS * rate))
    while (sent < due) {
      const p = Buffer.alloc(1024, 1)
      p.writeBigInt64BE(process.hrtime.bigint(), 0)
      pending.push(sluice.publish(topic, p))
      sent++
    }
    await new Promise((resolve) => setTimeout(resolve, 1))
  }
  await Promise.all(pending)
}
const seconds = Number(process.hrtime.bigint() - start) / 1e9
process.stdout.write(`${JSON.stringify({ sent, seconds, msgsPerSec: sent / seconds })}\n`)
await sluice.close()
