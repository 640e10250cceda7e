import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fixture, runChild } from '../helpers/child.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { startRedis } from '../helpers/redis-servers.ts'
import { judge } from './history.ts'
import { everyAckedDelivered, keepTheLog, producerHistory, producerOutcome, readWholeLog } from './events-workload.ts'
import { reportFigures, scale } from './report.ts'

/**
 * Sluice on Redis under kill -9: of a consumer process (its leases run out
 * and its messages go to the next consumer, key order kept), and of the Redis
 * server itself (appendonly yes, appendfsync always), restarted under load.
 * Both on a private redis-server, never the machine's shared one.
 */

const consumerKills = scale('SLUICE_REDIS_CONSUMER_KILLS', 4)
const serverKills = scale('SLUICE_REDIS_SERVER_KILLS', 3)

/**
 * Key order as an at-least-once consumer owes it: per key, deliveries go
 * forward in offset order; the only step back allowed is a redelivery of the
 * message that was in flight (the same offset again), never a later message
 * of the key before it.
 */
function keyOrderViolations(
  lines: readonly string[],
  keyOf: Map<string, string>,
): { violations: string[]; redeliveries: number } {
  const last = new Map<string, { partition: number; offset: number }>()
  const violations: string[] = []
  let redeliveries = 0
  for (const line of lines) {
    const [word, id, attempt, partition, offset] = line.split(' ')
    if (word !== 'got') continue
    if (Number(attempt) > 1) redeliveries++
    const key = keyOf.get(id!)
    if (key === undefined) continue
    const at = { partition: Number(partition), offset: Number(offset) }
    const before = last.get(key)
    if (before !== undefined && before.partition === at.partition && at.offset < before.offset)
      violations.push(`key ${key}: offset ${at.offset} delivered after ${before.offset}`)
    last.set(key, at)
  }
  return { violations, redeliveries }
}

test(`Redis: a consumer process killed -9 ${consumerKills} times: its leased messages go to the next consumer after the lease, key order kept, nothing acknowledged lost`, async (t) => {
  const seed = runSeed()
  const random = seededRandom(seed)
  t.diagnostic(`seed ${seed} (replay with SLUICE_SEED=${seed})`)
  const redis = await startRedis({ appendfsync: 'always' })
  cleanup(t, () => redis.stop())
  const url = redis.url
  const started = Date.now()
  const producer = runChild(t, fixture('broker-producer.ts'), [url, '3'])
  await producer.waitForLine(/^ready$/)
  const consumerLines: string[] = []
  let consumer = runChild(t, fixture('broker-consumer.ts'), [url])
  await consumer.waitForLine(/^ready$/)
  for (let i = 0; i < consumerKills; i++) {
    await sleep(300 + random() * 700)
    await consumer.kill9()
    consumerLines.push(...consumer.lines)
    consumer = runChild(t, fixture('broker-consumer.ts'), [url])
    await consumer.waitForLine(/^ready$/)
  }
  producer.process.send({ stop: true })
  await producer.waitForLine(/^done$/, 120_000)
  const { acked } = producerOutcome(producer)
  // The killed consumers' leases run out after ackTimeoutMs (5 s in the fixture); then the last one gets them.
  await everyAckedDelivered(acked, () => [...consumerLines, ...consumer.lines])
  consumerLines.push(...consumer.lines)
  const delivered = producerHistory(seed, producer)
  for (const line of consumerLines) {
    const [word, id, , partition, offset] = line.split(' ')
    if (word === 'got') delivered.read(id!, { partition: Number(partition), offset: Number(offset) })
  }
  const report = await judge(t, delivered, 'kill-redis-consumer-deliveries')
  const keyOf = new Map<string, string>()
  for (const line of producer.lines) {
    const [word, name, counter, key] = line.split(' ')
    if (word === 'try') keyOf.set(`${name}:${counter}`, key!)
  }
  const order = keyOrderViolations(consumerLines, keyOf)
  t.diagnostic(
    `${consumerKills} consumer kills, ${acked.size} acknowledged publishes, ${order.redeliveries} redeliveries, ${order.violations.length} key order violations`,
  )
  assert.deepEqual(order.violations, [], 'key order held across consumer kills')
  assert.ok(order.redeliveries > 0, 'the killed consumers held leases that were redelivered')
  await reportFigures('kill-redis-consumer', {
    kills: consumerKills,
    ms: Date.now() - started,
    acknowledged: acked.size,
    redeliveries: order.redeliveries,
    keyOrderViolations: order.violations.length,
    deliveries: report,
  })
})

test(`Redis: the server (appendfsync always) killed -9 ${serverKills} times under load and restarted: 0 acknowledged messages lost`, async (t) => {
  const seed = runSeed()
  const random = seededRandom(seed)
  t.diagnostic(`seed ${seed} (replay with SLUICE_SEED=${seed})`)
  const redis = await startRedis({ appendfsync: 'always' })
  cleanup(t, () => redis.stop())
  const url = redis.url
  const started = Date.now()
  await keepTheLog(t, url)
  const producer = runChild(t, fixture('broker-producer.ts'), [url, '3'])
  const consumer = runChild(t, fixture('broker-consumer.ts'), [url])
  await producer.waitForLine(/^ready$/)
  await consumer.waitForLine(/^ready$/)
  for (let i = 0; i < serverKills; i++) {
    await sleep(300 + random() * 700)
    await redis.kill9()
    await sleep(random() * 300)
    await redis.restart()
  }
  await sleep(500)
  producer.process.send({ stop: true })
  await producer.waitForLine(/^done$/, 120_000)
  const { acked, failed } = producerOutcome(producer)
  const stored = producerHistory(seed, producer)
  const count = await readWholeLog(t, url, stored)
  const log = await judge(t, stored, 'kill-redis-server-log', { wholeLog: true })
  await everyAckedDelivered(acked, () => consumer.lines)
  t.diagnostic(
    `${serverKills} server kills: ${acked.size} acknowledged, ${failed} publishes failed, ${count} stored, lost ${log.lost}, stored twice ${log.storedTwice}`,
  )
  assert.ok(acked.size > serverKills * 20, `only ${acked.size} publishes acknowledged`)
  await reportFigures('kill-redis-server', {
    kills: serverKills,
    ms: Date.now() - started,
    acknowledged: acked.size,
    failedPublishes: failed,
    stored: count,
    log,
  })
})
