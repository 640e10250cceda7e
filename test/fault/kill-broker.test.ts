import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { open } from '../../src/index.ts'
import { fixture, runChild, type Child } from '../helpers/child.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { freePort } from '../helpers/ports.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { History, judge } from './history.ts'
import { reportFigures, scale } from './report.ts'

const kills = scale('SLUICE_BROKER_KILLS', 4)

test(`a producer and a consumer process talk only through a broker that is killed -9 ${kills} times: nothing acknowledged is lost, nothing stored twice, key order kept`, async (t) => {
  const seed = runSeed()
  t.diagnostic(
    `seed ${seed} (replay with SLUICE_SEED=${seed}), segment bytes ${process.env['SLUICE_SEGMENT_BYTES'] ?? 'default'}`,
  )
  const random = seededRandom(seed)
  const dir = await tempDir(t)
  const port = await freePort()
  const url = `sluice://127.0.0.1:${port}`
  const startBroker = async (): Promise<Child> => {
    const broker = runChild(t, fixture('broker.ts'), [dir, String(port)])
    await broker.waitForLine(/^listening /)
    return broker
  }
  const started = Date.now()
  let broker = await startBroker()
  const producer = runChild(t, fixture('broker-producer.ts'), [url, '4'])
  const consumer = runChild(t, fixture('broker-consumer.ts'), [url])
  await producer.waitForLine(/^ready$/)
  await consumer.waitForLine(/^ready$/)

  for (let i = 0; i < kills; i++) {
    await sleep(200 + random() * 1000)
    await broker.kill9()
    broker = await startBroker()
  }
  producer.process.send({ stop: true })
  await producer.waitForLine(/^done$/, 120_000)

  // Two judgements: what the consumer was handed, and what the log holds.
  const delivered = new History(seed)
  const stored = new History(seed)
  let failed = 0
  let retriesRecognised = 0
  for (const line of producer.lines) {
    const [word, name, counter, a, b, duplicate] = line.split(' ')
    for (const h of [delivered, stored]) {
      if (word === 'try') h.attempt(name!, Number(counter), a)
      if (word === 'ack') h.ack(name!, Number(counter), { partition: Number(a), offset: Number(b) })
    }
    if (word === 'fail') failed++
    if (word === 'ack' && duplicate === 'true') retriesRecognised++
  }
  const acked = new Set(
    producer.lines.filter((l) => l.startsWith('ack ')).map((l) => l.split(' ').slice(1, 3).join(':')),
  )
  let waitFailure: unknown = null
  await waitFor(
    'the consumer to receive every acknowledged publish',
    () => {
      const seen = new Set(consumer.lines.filter((l) => l.startsWith('got ')).map((l) => l.split(' ')[1]!))
      return [...acked].every((id) => seen.has(id))
    },
    60_000,
  ).catch((err: unknown) => {
    // Judge anyway: the report says which messages are missing, and whether the log has them.
    waitFailure = err
  })
  for (const line of consumer.lines) {
    const [word, id, , partition, offset] = line.split(' ')
    if (word === 'got') delivered.read(id!, { partition: Number(partition), offset: Number(offset) })
  }
  const reader = await open({ url })
  cleanup(t, () => reader.close())
  for (let partition = 0; partition < 3; partition++) {
    for (let from = 0; ;) {
      const batch = await reader.read('events', partition, from, 1000)
      if (batch.length === 0) break
      for (const m of batch) stored.read(m.id, { partition, offset: m.offset })
      from = batch.at(-1)!.offset + 1
    }
  }

  const log = await judge(t, stored, 'kill-broker-log', { wholeLog: true })
  const deliveries = await judge(t, delivered, 'kill-broker-deliveries')
  if (waitFailure !== null) throw waitFailure as Error
  t.diagnostic(`${kills} broker kills; ${failed} publishes failed, ${retriesRecognised} retries recognised as stored`)
  assert.ok(
    log.acknowledged > log.attempted * 0.9 && log.acknowledged > kills * 20,
    `only ${log.acknowledged} of ${log.attempted} publishes acknowledged`,
  )
  await reportFigures('kill-broker', {
    kills,
    segmentBytes: process.env['SLUICE_SEGMENT_BYTES'] ?? 'default',
    ms: Date.now() - started,
    failedPublishes: failed,
    retriesRecognised,
    deliveries,
    log,
  })
  assert.equal(consumer.process.exitCode, null, 'the consumer reconnected on its own and is still running')
})
