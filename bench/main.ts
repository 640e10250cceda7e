// npm run bench: measures Sluice and writes a table and JSON under bench/results/.
import { brokerLoopback } from './broker-loopback.ts'
import { embeddedConsume } from './embedded-consume.ts'
import { embeddedPublish } from './embedded-publish.ts'
import { flowCost } from './flow-cost.ts'
import { machine, table, writeResults } from './lib/report.ts'

const log = (line: string): void => void process.stdout.write(`${line}\n`)
log(`machine: ${JSON.stringify(machine())}`)
log('embedded publish, 1 KiB payloads:')
const result = await embeddedPublish(log)
log('embedded end-to-end (publish -> handler -> ack), 1 KiB payloads:')
const consumeRows = await embeddedConsume(log)
log('flow control cost: the same publishes with a backlog bound and a rate limit that are never reached:')
const flow = await flowCost(log)
log('through the broker (sluice serve), clients in other processes over loopback, 1 KiB payloads:')
const brokerRows = await brokerLoopback(log)
log('')
log(table([...result.rows, ...consumeRows, ...flow.rows, ...brokerRows]))
log('')
log(
  `group commit: 64 concurrent fsync publishers reach ${result.groupCommitRatio.toFixed(1)}x the rate of one publisher waiting on its own fsync`,
)
const path = await writeResults('embedded', {
  machine: machine(),
  at: new Date().toISOString(),
  ...result,
  flowControl: { cost: flow.cost, checkNs: flow.checkNs, checkShare: flow.checkShare },
  rows: [...result.rows, ...consumeRows, ...flow.rows, ...brokerRows],
})
log(`results: ${path}`)
