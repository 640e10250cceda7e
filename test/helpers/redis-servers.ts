import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

/**
 * Redis servers a test starts and stops itself, on free loopback ports: one
 * with the append-only file (for restarts and kill -9), or a Redis Cluster of
 * masters. The machine's own Redis on 6379 keeps nothing on disk and is
 * shared; these are private to the test.
 */

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

/** A port free now whose cluster bus port (port + 10000) is free too. */
async function clusterPort(taken: Set<number>): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 30_000)
    if (taken.has(port) || taken.has(port + 10_000)) continue
    if ((await portFree(port)) && (await portFree(port + 10_000))) {
      taken.add(port)
      taken.add(port + 10_000)
      return port
    }
  }
}

export interface RedisServer {
  readonly port: number
  readonly url: string
  readonly dir: string
  readonly process: ChildProcess
  /** SIGKILL, and waits until it is gone. */
  kill9(): Promise<void>
  /** Starts it again on the same port and data directory. */
  restart(): Promise<void>
  stop(): Promise<void>
}

async function waitForPing(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null })
    probe.on('error', () => undefined)
    try {
      await probe.connect()
      await probe.ping()
      return
    } catch (err) {
      if (Date.now() > deadline) throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    } finally {
      probe.disconnect()
    }
  }
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()))
}

/** A redis-server with the append-only file, fsynced as `appendfsync` says. */
export async function startRedis(
  options: { appendfsync?: 'always' | 'everysec' | 'no'; extra?: string[] } = {},
): Promise<RedisServer> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-redis-'))
  const port = await clusterPort(new Set())
  const args = [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--dir',
    dir,
    '--save',
    '',
    '--appendonly',
    'yes',
    '--appendfsync',
    options.appendfsync ?? 'always',
    ...(options.extra ?? []),
  ]
  let child = spawn('redis-server', args, { stdio: 'ignore' })
  await waitForPing(port)
  const server: RedisServer = {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    get process() {
      return child
    },
    async kill9() {
      child.kill('SIGKILL')
      await exited(child)
    },
    async restart() {
      child = spawn('redis-server', args, { stdio: 'ignore' })
      await waitForPing(port, 30_000)
      // Loading the append-only file: the server answers LOADING until it is done.
      const probe = new Redis({ port, host: '127.0.0.1' })
      try {
        for (;;) {
          const info = await probe.info('persistence')
          if (/loading:0/.test(info)) break
          await new Promise((resolve) => setTimeout(resolve, 50))
        }
      } finally {
        probe.disconnect()
      }
    },
    async stop() {
      child.kill('SIGKILL')
      await exited(child)
      await rm(dir, { recursive: true, force: true })
    },
  }
  return server
}

export interface RedisCluster {
  readonly ports: readonly number[]
  /** redis+cluster://127.0.0.1:p1,127.0.0.1:p2,... */
  readonly url: string
  readonly servers: readonly ChildProcess[]
  /** Kills one master with SIGKILL and starts it again on its port and node file (a master restart). */
  restartNode(index: number): Promise<void>
  stop(): Promise<void>
}

/**
 * A Redis Cluster of `masters` masters (no replicas), its slots spread evenly, ready when this resolves.
 * With `appendfsync`, each master keeps an append-only file, so a restarted master comes back with its data.
 */
export async function startRedisCluster(
  masters = 3,
  options: { appendfsync?: 'always' | 'everysec' } = {},
): Promise<RedisCluster> {
  const dir = await mkdtemp(join(tmpdir(), 'sluice-redis-cluster-'))
  const taken = new Set<number>()
  const ports: number[] = []
  for (let i = 0; i < masters; i++) ports.push(await clusterPort(taken))
  const argsOf = (port: number): string[] => [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--cluster-enabled',
    'yes',
    '--cluster-config-file',
    join(dir, `nodes-${port}.conf`),
    '--dir',
    dir,
    '--dbfilename',
    `dump-${port}.rdb`,
    '--appendfilename',
    `appendonly-${port}.aof`,
    '--save',
    '',
    ...(options.appendfsync === undefined
      ? ['--appendonly', 'no']
      : ['--appendonly', 'yes', '--appendfsync', options.appendfsync, '--appenddirname', `aof-${port}`]),
  ]
  const servers = ports.map((port) => spawn('redis-server', argsOf(port), { stdio: 'ignore' }))
  for (const port of ports) await waitForPing(port)
  const create = spawnSync(
    'redis-cli',
    ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes'],
    { encoding: 'utf8', timeout: 60_000 },
  )
  if (create.status !== 0) throw new Error(`redis-cli --cluster create failed: ${create.stdout}${create.stderr}`)
  await waitForClusterOk(ports)
  return {
    ports,
    url: `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`,
    servers,
    async restartNode(index: number) {
      const child = servers[index]!
      child.kill('SIGKILL')
      await exited(child)
      servers[index] = spawn('redis-server', argsOf(ports[index]!), { stdio: 'ignore' })
      await waitForPing(ports[index]!)
      await waitForClusterOk(ports)
    },
    async stop() {
      for (const child of servers) child.kill('SIGKILL')
      await Promise.all(servers.map(exited))
      await rm(dir, { recursive: true, force: true })
    },
  }
}

async function waitForClusterOk(ports: readonly number[], timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (const port of ports) {
    const probe = new Redis({ port, host: '127.0.0.1' })
    try {
      for (;;) {
        const info = await probe.cluster('INFO')
        if (/cluster_state:ok/.test(info)) break
        if (Date.now() > deadline) throw new Error(`cluster not ok on ${port}: ${info}`)
        await new Promise((resolve) => setTimeout(resolve, 100))
      }
    } finally {
      probe.disconnect()
    }
  }
}
