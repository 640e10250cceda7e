// npm run bench: measures Sluice and writes a table and JSON under bench/results/.
import { embeddedPublish } from './embedded-publish.ts'
import { machine, table, writeResults } from './lib/report.ts'

const log = (line: string): void => void process.stdout.write(`${line}\n`)
log(`machine: ${JSON.stringify(machine())}`)
log('embedded publish, 1 KiB payloads:')
const result = await embeddedPublish(log)
log('')
log(table(result.rows))
log('')
log(
  `group commit: 64 concurrent fsync publishers reach ${result.groupCommitRatio.toFixed(1)}x the rate of one publisher waiting on its own fsync`,
)
const path = await writeResults('embedded-publish', { machine: machine(), at: new Date().toISOString(), ...result })
log(`results: ${path}`)
