import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fixture, runChild, type Child } from '../helpers/child.ts'
import { freePort } from '../helpers/ports.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

const kills = Number(process.env['SLUICE_BROKER_KILLS'] ?? 4)

test(`a producer and a consumer process talk only through a broker that is killed -9 ${kills} times: nothing acknowledged is lost`, async (t) => {
  const seed = runSeed()
  t.diagnostic(`seed ${seed}`)
  const random = seededRandom(seed)
  const dir = await tempDir(t)
  const port = await freePort()
  const url = `sluice://127.0.0.1:${port}`
  const startBroker = async (): Promise<Child> => {
    const broker = runChild(t, fixture('broker.ts'), [dir, String(port)])
    await broker.waitForLine(/^listening /)
    return broker
  }
  let broker = await startBroker()
  const total = 3000
  const producer = runChild(t, fixture('broker-producer.ts'), [url, String(total), '4'])
  const consumer = runChild(t, fixture('broker-consumer.ts'), [url])
  await producer.waitForLine(/^ready$/)
  await consumer.waitForLine(/^ready$/)

  for (let i = 0; i < kills; i++) {
    await sleep(300 + random() * 1200)
    await broker.kill9()
    broker = await startBroker()
  }
  await producer.waitForLine(/^done$/, 120_000)

  const tried = new Set<string>()
  const acked = new Set<string>()
  const failed: string[] = []
  for (const line of producer.lines) {
    const [word, id, , , duplicate] = line.split(' ')
    if (word === 'try') tried.add(id!)
    if (word === 'ack') {
      acked.add(id!)
      if (duplicate === 'true') t.diagnostic(`publish of ${id} was recognised as a retry of one already stored`)
    }
    if (word === 'fail') failed.push(line)
  }
  const got = (): string[] => consumer.lines.filter((l) => l.startsWith('got ')).map((l) => l.split(' ')[1]!)
  await waitFor(
    'the consumer to receive every acknowledged publish',
    () => {
      const seen = new Set(got())
      return [...acked].every((id) => seen.has(id))
    },
    60_000,
  )

  const deliveries = got()
  const unique = new Set(deliveries)
  const unexpected = [...unique].filter((id) => !tried.has(id))
  const lost = [...acked].filter((id) => !unique.has(id))
  const duplicates = deliveries.length - unique.size
  t.diagnostic(
    `${kills} broker kills; ${tried.size} tried, ${acked.size} acknowledged, ${failed.length} failed; ` +
      `${deliveries.length} deliveries of ${unique.size} messages: ${duplicates} duplicates (${((100 * duplicates) / Math.max(1, unique.size)).toFixed(2)}%), ` +
      `${unique.size - acked.size} delivered without an acknowledgement (stored before a kill, answer lost)`,
  )
  assert.deepEqual(lost, [], 'acknowledged publishes never delivered')
  assert.deepEqual(unexpected, [], 'deliveries of messages never published')
  assert.ok(
    acked.size > total * 0.9,
    `only ${acked.size} of ${total} publishes acknowledged (${failed.slice(0, 3).join('; ')})`,
  )
  assert.equal(producer.process.exitCode ?? 0, 0)
  assert.equal(consumer.process.exitCode, null, 'the consumer reconnected on its own and is still running')
})
