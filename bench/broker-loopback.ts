import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from '../src/index.ts'
import { scenarioSeconds } from './lib/measure.ts'
import { freePort, script, start, type Proc } from './lib/processes.ts'
import type { Row } from './lib/report.ts'

/**
 * Sluice through its broker: `sluice serve` in one process, producers and
 * consumers in others, over loopback. 1 KiB payloads, at-least-once,
 * `interval` durability (and `fsync` for publish).
 */

interface Broker {
  readonly url: string
  readonly proc: Proc
  readonly dir: string
}

async function startBroker(): Promise<Broker> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-bench-broker-'))
  const port = await freePort()
  const httpPort = await freePort()
  const proc = start(script('../src/cli/main.ts'), [
    'serve',
    '--data-dir',
    dir,
    '--port',
    String(port),
    '--http-port',
    String(httpPort),
  ])
  await proc.line(/listening/, 30_000)
  return { url: `sluice://127.0.0.1:${port}`, proc, dir }
}

async function stopBroker(broker: Broker): Promise<void> {
  await broker.proc.stop()
  await rm(broker.dir, { recursive: true, force: true })
}

async function createTopic(url: string, topic: string, durability: 'fsync' | 'interval'): Promise<void> {
  const sluice = await open({ url })
  await sluice.createTopic(topic, { partitions: 4, durability })
  await sluice.close()
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0
}

async function publishRow(
  broker: Broker,
  durability: 'fsync' | 'interval',
  mode: 'window' | 'batch',
  count: number,
): Promise<Row> {
  const topic = `pub-${durability}-${mode}`
  await createTopic(broker.url, topic, durability)
  const producer = start(script('clients/sluice-producer.ts'), [broker.url, topic, mode, String(count)])
  const result = JSON.parse(await producer.line(/^\{/)) as { msgsPerSec: number }
  await producer.stop()
  return {
    scenario: 'broker publish',
    system: 'sluice',
    settings: `${durability}, producer process -> broker over loopback, ${mode === 'batch' ? 'publishBatch of 100, 8 in flight' : 'one per publish, 64 in flight'}`,
    msgsPerSec: result.msgsPerSec,
    mbPerSec: (result.msgsPerSec * 1024) / 1e6,
  }
}

async function endToEndRow(broker: Broker, count: number): Promise<Row> {
  const topic = 'e2e'
  await createTopic(broker.url, topic, 'interval')
  const consumer = start(script('clients/sluice-consumer.ts'), [broker.url, topic, 'bench', String(count)])
  await consumer.line(/^ready$/)
  const startedAt = process.hrtime.bigint()
  const producer = start(script('clients/sluice-producer.ts'), [broker.url, topic, 'batch', String(count)])
  await consumer.line(/^\{/)
  const seconds = Number(process.hrtime.bigint() - startedAt) / 1e9
  await Promise.all([producer.stop(), consumer.stop()])
  const msgsPerSec = count / seconds
  return {
    scenario: 'broker end-to-end',
    system: 'sluice',
    settings: 'interval, at-least-once, producer and consumer processes, publishBatch of 100, concurrency 64',
    msgsPerSec,
    mbPerSec: (msgsPerSec * 1024) / 1e6,
    note: `${count.toLocaleString('en-US')} messages from the producer's start to the last handler`,
  }
}

async function latencyRow(broker: Broker, rate: number, seconds: number): Promise<Row> {
  const topic = `lat-${rate}`
  await createTopic(broker.url, topic, 'interval')
  const count = rate * seconds
  const consumer = start(script('clients/sluice-consumer.ts'), [broker.url, topic, 'bench', String(count), 'latency'])
  await consumer.line(/^ready$/)
  const producer = start(script('clients/sluice-producer.ts'), [
    broker.url,
    topic,
    'steady',
    String(count),
    String(rate),
  ])
  const result = JSON.parse(await consumer.line(/^\{/)) as { latencyNs: number[] }
  await Promise.all([producer.stop(), consumer.stop()])
  const sorted = result.latencyNs.sort((a, b) => a - b)
  const ms = (ns: number): number => Math.round(ns / 1e3) / 1e3
  return {
    scenario: 'broker publish-to-handler latency',
    system: 'sluice',
    settings: `interval, at-least-once, producer and consumer processes, steady ${rate.toLocaleString('en-US')} msgs/s`,
    msgsPerSec: rate,
    p50Ms: ms(percentile(sorted, 50)),
    p99Ms: ms(percentile(sorted, 99)),
    note: `p99.9 ${ms(percentile(sorted, 99.9))} ms, max ${ms(sorted[sorted.length - 1] ?? 0)} ms over ${count.toLocaleString('en-US')} messages`,
  }
}

export async function brokerLoopback(log: (line: string) => void): Promise<Row[]> {
  const rows: Row[] = []
  const broker = await startBroker()
  try {
    const count = Math.max(100_000, Math.round(scenarioSeconds() * 100_000))
    for (const durability of ['fsync', 'interval'] as const) {
      for (const mode of ['window', 'batch'] as const) {
        const row = await publishRow(broker, durability, mode, mode === 'batch' ? count : Math.round(count / 3))
        log(`  ${row.settings}: ${Math.round(row.msgsPerSec).toLocaleString('en-US')} msgs/s`)
        rows.push(row)
      }
    }
    const e2e = await endToEndRow(broker, count)
    log(`  end-to-end: ${Math.round(e2e.msgsPerSec).toLocaleString('en-US')} msgs/s`)
    rows.push(e2e)
    const latency = await latencyRow(broker, 5000, Math.max(3, scenarioSeconds()))
    log(`  latency at 5,000 msgs/s: p50 ${latency.p50Ms} ms, p99 ${latency.p99Ms} ms (${latency.note})`)
    rows.push(latency)
  } finally {
    await stopBroker(broker)
  }
  return rows
}
