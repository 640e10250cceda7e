import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { test } from 'node:test'
import { Broker } from './broker/server.ts'
import { Engine } from './engine/engine.ts'
import { ErrorCode, hasCode } from './core/errors.ts'
import { open } from './open.ts'
import { cleanup } from '../test/helpers/cleanup.ts'
import { tempDir } from '../test/helpers/temp-dir.ts'

test("open('memory:') opens the in-memory engine, as open({ url: 'memory:' }) does", async (t) => {
  const sluice = await open('memory:')
  cleanup(t, () => sluice.close())
  const topic = await sluice.createTopic('orders')
  assert.equal(topic.durability, 'memory')
  await sluice.publish('orders', { n: 1 })
  assert.deepEqual(
    (await sluice.read('orders', 0)).map((m) => m.data),
    [{ n: 1 }],
  )
})

test("open('file:<dir>') keeps its data in that directory", async (t) => {
  const dir = await tempDir(t, 'sluice-open-')
  const sluice = await open(`file:${dir}`)
  await sluice.createTopic('orders')
  await sluice.publish('orders', 'kept')
  await sluice.close()
  assert.ok((await readdir(dir)).length > 0, 'the engine wrote into the directory')
  const again = await open({ url: `file:${dir}` })
  cleanup(t, () => again.close())
  assert.deepEqual(
    (await again.read('orders', 0)).map((m) => m.data),
    ['kept'],
  )
})

test("open('sluice://host:port') connects to that broker", async (t) => {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: null })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  const sluice = await open(`sluice://127.0.0.1:${port}`)
  cleanup(t, () => sluice.close())
  await sluice.createTopic('remote')
  const direct = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => direct.close())
  assert.deepEqual(
    (await direct.listTopics()).map((topic) => topic.name),
    ['remote'],
  )
})

test('open refuses anything but a URL string or an options object with INVALID_ARGUMENT', async () => {
  for (const given of [42, null, true, ['memory:'], () => 'memory:']) {
    await assert.rejects(open(given as never), (err: unknown) => {
      assert.ok(hasCode(err, ErrorCode.InvalidArgument), `open(${String(given)}): ${String(err)}`)
      assert.match(err.message, /URL string/)
      return true
    })
  }
  await assert.rejects(open('ftp://x'), (err: unknown) => hasCode(err, ErrorCode.InvalidArgument))
})

test('a negative, NaN, fractional or overlong client timeout is INVALID_ARGUMENT, before connecting', async () => {
  for (const name of ['connectTimeoutMs', 'requestTimeoutMs'] as const) {
    for (const value of [-1, 0, Number.NaN, 1.5, Infinity, 2 ** 31, '100']) {
      // Port 1: nothing listens there, so only the check can answer at once.
      await assert.rejects(
        open({ url: 'sluice://127.0.0.1:1', connectTimeoutMs: 200, [name]: value as number }),
        (err: unknown) => {
          assert.ok(hasCode(err, ErrorCode.InvalidArgument), `${name}: ${String(value)}: ${String(err)}`)
          assert.match(err.message, new RegExp(`^${name} must be an integer from 1 to`))
          return true
        },
      )
    }
  }
})

test('cacheBytes bounds the records an embedded engine keeps in memory; a negative or fractional one is INVALID_ARGUMENT', async (t) => {
  for (const cacheBytes of [-1, 1.5, Number.NaN]) {
    await assert.rejects(open({ url: 'memory:', cacheBytes }), (err: unknown) =>
      hasCode(err, ErrorCode.InvalidArgument),
    )
  }
  const dir = await tempDir(t)
  const sluice = await open({ url: `file:${dir}`, cacheBytes: 0 })
  cleanup(t, () => sluice.close())
  await sluice.createTopic('t')
  await sluice.publish('t', 'from disk')
  const [message] = await sluice.read('t', 0, 0, 1)
  assert.equal(message?.data, 'from disk', 'with no cache, reads come from the disk')
})
