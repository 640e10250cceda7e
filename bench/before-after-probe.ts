// One tree's figures, in a process of its own (bench/before-after.ts runs it in two trees in turns): Sluice
// embedded (file:, fsync) and through the tree's own broker, 20,000 messages of 1 KiB. Self-contained: it is
// copied into the older tree, so it imports nothing but that tree's public API and Node's.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from '../src/index.ts'

const n = 20_000
const payload = Buffer.alloc(1024, 'x')
const perSecond = (count: number, started: number): number => count / ((performance.now() - started) / 1000)

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

async function consumeAll(sluice: Awaited<ReturnType<typeof open>>, topic: string, work: () => Promise<void>) {
  let seen = 0
  let allSeen!: () => void
  const finished = new Promise<void>((resolve) => (allSeen = resolve))
  const sub = await sluice.subscribe(
    topic,
    's',
    () => {
      if (++seen === n) allSeen()
    },
    { concurrency: 64, prefetch: 256 },
  )
  const started = performance.now()
  await work()
  await finished
  const rate = perSecond(n, started)
  await sub.close()
  return rate
}

async function figures(url: string): Promise<Record<string, number>> {
  const sluice = await open(url)
  try {
    for (const topic of ['batch', 'flight', 'e2e'])
      await sluice.createTopic(topic, { partitions: 1, durability: 'fsync' })
    let started = performance.now()
    for (let i = 0; i < n; i += 64)
      await sluice.publishBatch(
        'batch',
        Array.from({ length: 64 }, () => ({ data: payload })),
      )
    const publishBatch = perSecond(n, started)
    started = performance.now()
    for (let i = 0; i < n; i += 64)
      await Promise.all(Array.from({ length: 64 }, () => sluice.publish('flight', payload)))
    const publishInFlight = perSecond(n, started)
    const consume = await consumeAll(sluice, 'batch', () => Promise.resolve())
    const endToEnd = await consumeAll(sluice, 'e2e', async () => {
      for (let i = 0; i < n; i += 64)
        await Promise.all(Array.from({ length: 64 }, () => sluice.publish('e2e', payload)))
    })
    return { publishBatch, publishInFlight, consume, endToEnd }
  } finally {
    await sluice.close()
  }
}

const dir = await mkdtemp(join(tmpdir(), 'sluice-before-after-'))
try {
  const embedded = await figures(`file:${join(dir, 'embedded')}`)
  const port = await freePort()
  const server = spawn(
    process.execPath,
    [
      '--import',
      'tsx',
      join(import.meta.dirname, '../src/cli/main.ts'),
      'serve',
      '--data-dir',
      join(dir, 'broker'),
      '--port',
      String(port),
      '--http-port',
      String(await freePort()),
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  await new Promise<void>((resolve, reject) => {
    server.stdout.on('data', (d: Buffer) => /listening/.test(d.toString()) && resolve())
    server.once('exit', () => reject(new Error('the broker exited before listening')))
  })
  try {
    const broker = await figures(`sluice://127.0.0.1:${port}`)
    process.stdout.write(`${JSON.stringify({ embedded, broker })}\n`)
  } finally {
    server.kill('SIGTERM')
    await new Promise((resolve) => server.once('exit', resolve))
  }
} finally {
  await rm(dir, { recursive: true, force: true })
}
