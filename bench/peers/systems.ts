import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect as tcpConnect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { AckPolicy, jetstreamManager, StorageType } from '@nats-io/jetstream'
import { connect as natsConnect } from '@nats-io/transport-node'
import amqp from 'amqplib'
import { Queue } from 'bullmq'
import { Redis } from 'ioredis'
import { open } from '../../src/index.ts'
import { freePort, script, start, type Proc } from '../lib/processes.ts'
import type { Peer } from './peer.ts'

/** The systems the bench runs, set up from the bench's process; their clients run in child processes. */

function reachable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = tcpConnect({ host: '127.0.0.1', port })
    socket.once('connect', () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

async function waitUntilReachable(port: number, ms: number): Promise<void> {
  const deadline = Date.now() + ms
  while (!(await reachable(port))) {
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${ms} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** Sluice's broker (`sluice serve`) in a child process, on a temp data dir; topics with the given durability. */
export class SluiceBroker implements Peer {
  readonly name: string
  readonly keyOrdering = "ordering: 'key': one message per key in flight, keys in parallel across handlers"
  private proc: Proc | null = null
  private dir = ''
  connection: Record<string, unknown> = {}

  constructor(readonly topicDurability: 'fsync' | 'interval') {
    this.name = `sluice ${topicDurability}`
  }

  get durability(): string {
    return this.topicDurability === 'fsync'
      ? 'fsync before every receipt (group commit)'
      : 'written at once, fsync every 100 ms'
  }

  async start(): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'sluice-bench-peers-'))
    const port = await freePort()
    this.proc = start(script('../src/cli/main.ts'), [
      'serve',
      '--data-dir',
      this.dir,
      '--port',
      String(port),
      '--http-port',
      String(await freePort()),
    ])
    await this.proc.line(/listening/, 30_000)
    this.connection = { url: `sluice://127.0.0.1:${port}` }
  }

  async stop(): Promise<void> {
    await this.proc?.stop()
    await rm(this.dir, { recursive: true, force: true })
  }

  unavailable(): Promise<string | null> {
    return Promise.resolve(this.proc === null ? 'not started' : null)
  }

  async setup(queue: string): Promise<void> {
    const sluice = await open({ url: String(this.connection['url']) })
    await sluice.deleteTopic(queue).catch(() => undefined)
    await sluice.createTopic(queue, { partitions: 4, durability: this.topicDurability })
    await sluice.close()
  }

  async teardown(queue: string): Promise<void> {
    const sluice = await open({ url: String(this.connection['url']) })
    await sluice.deleteTopic(queue).catch(() => undefined)
    await sluice.close()
  }
}

export class RedisStreams implements Peer {
  readonly keyOrdering = 'none: a consumer group hands entries to any consumer (one consumer per stream keeps order)'
  readonly connection: Record<string, unknown>
  constructor(
    readonly name: string,
    readonly port: number,
    readonly durability: string,
  ) {
    this.connection = { port }
  }

  async unavailable(): Promise<string | null> {
    return (await reachable(this.port)) ? null : `nothing listens on 127.0.0.1:${this.port}`
  }

  async setup(queue: string, subscribers: number): Promise<void> {
    const redis = new Redis({ host: '127.0.0.1', port: this.port })
    await redis.del(queue)
    for (let s = 0; s < subscribers; s++) await redis.xgroup('CREATE', queue, `s${s}`, '0', 'MKSTREAM')
    redis.disconnect()
  }

  async teardown(queue: string): Promise<void> {
    const redis = new Redis({ host: '127.0.0.1', port: this.port })
    await redis.del(queue)
    redis.disconnect()
  }
}

/** A Redis with `appendonly yes` and `appendfsync always`, started by the bench on a free port and stopped after. */
export class RedisAlwaysFsync extends RedisStreams {
  private child: ReturnType<typeof spawn> | null = null
  private dir = ''
  static async start(): Promise<RedisAlwaysFsync> {
    const port = await freePort()
    const peer = new RedisAlwaysFsync(
      'redis-streams aof always',
      port,
      'appendfsync always: fsync of the AOF before replying',
    )
    peer.dir = await mkdtemp(join(tmpdir(), 'sluice-bench-redis-'))
    peer.child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--dir',
        peer.dir,
        '--appendonly',
        'yes',
        '--appendfsync',
        'always',
        '--save',
        '',
      ],
      { stdio: 'ignore' },
    )
    await waitUntilReachable(port, 10_000)
    return peer
  }

  async stop(): Promise<void> {
    this.child?.kill('SIGKILL')
    await rm(this.dir, { recursive: true, force: true })
  }
}

export class NatsJetStream implements Peer {
  readonly name = 'nats jetstream'
  readonly durability = 'file store, default settings: acked once written, not fsynced per write'
  readonly keyOrdering = 'none across consumers: per-key order needs a subject per key and a consumer each'
  readonly connection = { port: 4222 }

  async unavailable(): Promise<string | null> {
    if (!(await reachable(4222))) return 'nothing listens on 127.0.0.1:4222'
    try {
      const nc = await natsConnect({ servers: '127.0.0.1:4222' })
      await jetstreamManager(nc)
      await nc.close()
      return null
    } catch (err) {
      return `JetStream not available: ${(err as Error).message}`
    }
  }

  async setup(queue: string, subscribers: number): Promise<void> {
    const nc = await natsConnect({ servers: '127.0.0.1:4222' })
    const jsm = await jetstreamManager(nc)
    await jsm.streams.delete(queue).catch(() => undefined)
    await jsm.streams.add({ name: queue, subjects: [queue], storage: StorageType.File })
    for (let s = 0; s < subscribers; s++) {
      await jsm.consumers.add(queue, { durable_name: `s${s}`, ack_policy: AckPolicy.Explicit, max_ack_pending: 20_000 })
    }
    await nc.close()
  }

  async teardown(queue: string): Promise<void> {
    const nc = await natsConnect({ servers: '127.0.0.1:4222' })
    const jsm = await jetstreamManager(nc)
    await jsm.streams.delete(queue).catch(() => undefined)
    await nc.close()
  }
}

/** RabbitMQ: a durable fanout exchange named after the queue, one queue of the given type per subscriber. */
export class RabbitMq implements Peer {
  readonly name: string
  readonly durability: string
  readonly keyOrdering = 'per queue, one consumer at a time (single active consumer); no per-key parallelism'
  readonly connection = { port: 5672 }

  constructor(readonly queueType: 'quorum' | 'classic') {
    this.name = `rabbitmq ${queueType}`
    this.durability =
      queueType === 'quorum'
        ? 'quorum queue (Raft log, fsync before confirm), persistent messages'
        : 'classic durable queue, persistent messages (confirm after fsync, batched)'
  }

  async unavailable(): Promise<string | null> {
    return (await reachable(5672)) ? null : 'nothing listens on 127.0.0.1:5672'
  }

  async setup(queue: string, subscribers: number): Promise<void> {
    await this.teardown(queue, subscribers)
    const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672')
    const ch = await conn.createChannel()
    await ch.assertExchange(queue, 'fanout', { durable: true })
    for (let s = 0; s < subscribers; s++) {
      const q = `${queue}.s${s}`
      await ch.assertQueue(q, { durable: true, arguments: { 'x-queue-type': this.queueType } })
      await ch.bindQueue(q, queue, '')
    }
    await conn.close()
  }

  async teardown(queue: string, subscribers = 4): Promise<void> {
    const conn = await amqp.connect('amqp://guest:guest@127.0.0.1:5672')
    const ch = await conn.createChannel()
    for (let s = 0; s < Math.max(subscribers, 4); s++) await ch.deleteQueue(`${queue}.s${s}`)
    await ch.deleteExchange(queue)
    await conn.close()
  }
}

export class BullMq implements Peer {
  readonly name = 'bullmq'
  readonly durability = 'as its Redis: here no persistence (the machine runs Redis without AOF or snapshots)'
  readonly keyOrdering = 'none (groups are a BullMQ Pro feature)'
  readonly connection = { port: 6379 }

  async unavailable(): Promise<string | null> {
    return (await reachable(6379)) ? null : 'nothing listens on 127.0.0.1:6379'
  }

  async setup(queue: string, subscribers: number): Promise<void> {
    if (subscribers > 1) throw new Error('BullMQ has no fan-out: each subscriber needs its own queue')
    await this.teardown(queue)
  }

  async teardown(queue: string): Promise<void> {
    const q = new Queue(queue, { connection: { host: '127.0.0.1', port: 6379 } })
    await q.obliterate({ force: true })
    await q.close()
  }
}
