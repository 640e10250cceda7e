import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Cluster } from 'ioredis'
import { fixture, runChild } from '../helpers/child.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { startRedisCluster } from '../helpers/redis-servers.ts'
import { judge } from './history.ts'
import { everyAckedDelivered, keepTheLog, producerHistory, producerOutcome, readWholeLog } from './events-workload.ts'
import { reportFigures } from './report.ts'

test('Redis Cluster: a topic spreads over masters; a producer and a consumer process on their own connections go on through a master killed -9 and restarted: 0 acknowledged lost', async (t) => {
  const cluster = await startRedisCluster(3, { appendfsync: 'always' })
  cleanup(t, () => cluster.stop())
  const url = cluster.url
  const started = Date.now()

  // Where the partitions live: the slot of each partition's log, and the master serving it.
  const probe = new Cluster(cluster.ports.map((port) => ({ host: '127.0.0.1', port })))
  cleanup(t, () => probe.disconnect())
  const slots = (await probe.cluster('SLOTS')) as unknown as [number, number, [string, number]][]
  const masterOf = async (key: string): Promise<number> => {
    const slot = await probe.cluster('KEYSLOT', key)
    return slots.find(([from, to]) => slot >= from && slot <= to)![2][1]
  }
  await keepTheLog(t, url)
  const producer = runChild(t, fixture('broker-producer.ts'), [url, '3'])
  const consumer = runChild(t, fixture('broker-consumer.ts'), [url])
  await producer.waitForLine(/^ready$/)
  await consumer.waitForLine(/^ready$/)
  const masters = await Promise.all([0, 1, 2].map((p) => masterOf(`sluice:{events:${p}}:log`)))
  t.diagnostic(`partitions 0-2 of 'events' on masters ${masters.join(', ')}`)
  assert.ok(new Set(masters).size >= 2, 'the partitions of one topic live on more than one master')

  await sleep(1000)
  // Restart the master holding partition 0 while both are running.
  const victim = cluster.ports.indexOf(masters[0]!)
  await cluster.restartNode(victim)
  await sleep(1000)
  producer.process.send({ stop: true })
  await producer.waitForLine(/^done$/, 120_000)

  const history = producerHistory(0, producer)
  const { acked, failed } = producerOutcome(producer)
  await everyAckedDelivered(acked, () => consumer.lines)
  const stored = await readWholeLog(t, url, history)
  const log = await judge(t, history, 'redis-cluster-restart', { wholeLog: true })
  t.diagnostic(
    `master ${masters[0]} restarted: ${acked.size} acknowledged, ${failed} publishes failed, ${stored} stored, lost ${log.lost}, stored twice ${log.storedTwice}`,
  )
  assert.ok(acked.size > 100, `only ${acked.size} publishes acknowledged`)
  await reportFigures('redis-cluster-restart', {
    ms: Date.now() - started,
    masters,
    acknowledged: acked.size,
    failed,
    stored,
    log,
  })
})
