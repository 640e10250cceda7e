import assert from 'node:assert/strict'
import { connect, type Socket } from 'node:net'
import { once } from 'node:events'
import { test, type TestContext } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import type { ConnectionLimits } from '../../src/broker/tcp/connection.ts'
import { Engine } from '../../src/engine/engine.ts'
import { open } from '../../src/index.ts'
import { encodeFrame, FrameKind, FrameParser, protocolVersion } from '../../src/protocol/frame.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { waitFor } from '../helpers/wait-for.ts'

// Clients that send most of a large frame and stall must not hold the broker's memory for ever.

async function broker(t: TestContext, limits: Partial<ConnectionLimits>): Promise<number> {
  const b = new Broker(await Engine.open({}), { port: 0, httpPort: null, limits })
  const { port } = await b.start()
  cleanup(t, () => b.stop())
  return port
}

/** A greeted raw connection; `closed` turns true when the broker drops it. */
async function greeted(t: TestContext, port: number): Promise<{ socket: Socket; closed: () => boolean }> {
  const socket = connect({ host: '127.0.0.1', port })
  socket.on('error', () => undefined)
  let isClosed = false
  socket.on('close', () => (isClosed = true))
  cleanup(t, () => socket.destroy())
  await once(socket, 'connect')
  const parser = new FrameParser(64 * 1024 * 1024)
  const welcome = new Promise<void>((resolve) => {
    socket.on('data', (data: Buffer) => {
      if (parser.push(data).some((f) => f.kind === FrameKind.Welcome)) resolve()
    })
  })
  socket.write(encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'partial-frames-test' }))
  await welcome
  return { socket, closed: () => isClosed }
}

/** Most of a frame of `bytes`: its length field, header and all but the last byte of its body. */
function mostOfAFrame(bytes: number): Buffer {
  const head = Buffer.alloc(9)
  head.writeUInt32BE(bytes + 5, 0)
  head[4] = FrameKind.Request
  head.writeUInt32BE(1, 5)
  return Buffer.concat([head, Buffer.alloc(bytes - 1, 0x90)])
}

test('frames still arriving are bounded across all connections: the one that goes over is closed, the others and good clients go on', async (t) => {
  const port = await broker(t, { maxPartialFrameBytes: 8 * 1024 * 1024 })
  const stallers = [await greeted(t, port), await greeted(t, port), await greeted(t, port)]
  for (const s of stallers.slice(0, 2)) s.socket.write(mostOfAFrame(3 * 1024 * 1024))
  const good = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => good.close())
  await good.createTopic('t')
  await good.publish('t', 'before')
  assert.ok(
    stallers.every((s) => !s.closed()),
    'within the bound nobody is closed',
  )
  stallers[2]!.socket.write(mostOfAFrame(3 * 1024 * 1024))
  await waitFor('the connection that went over to be closed', () => stallers[2]!.closed(), 10_000)
  assert.ok(!stallers[0]!.closed() && !stallers[1]!.closed())
  const receipt = await good.publish('t', 'after')
  assert.equal((await good.read('t', receipt.partition, receipt.offset, 1))[0]!.data, 'after')
  // Their share is given back when they go: a new staller fits again.
  stallers[0]!.socket.destroy()
  const next = await greeted(t, port)
  await waitFor('the first staller to be gone', () => stallers[0]!.closed(), 10_000)
  next.socket.write(mostOfAFrame(3 * 1024 * 1024))
  await good.publish('t', 'again')
  assert.ok(!next.closed(), 'the bytes of a closed connection were not given back')
})

test('a frame that stops arriving is dropped after frameTimeoutMs; a client sending whole frames all along is not', async (t) => {
  const port = await broker(t, { frameTimeoutMs: 300 })
  const staller = await greeted(t, port)
  staller.socket.write(mostOfAFrame(64 * 1024))
  const good = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => good.close())
  await good.createTopic('t')
  const started = Date.now()
  let published = 0
  while (Date.now() - started < 1000) {
    await good.publishBatch(
      't',
      Array.from({ length: 50 }, () => ({ data: 'x'.repeat(2000) })),
    )
    published += 50
  }
  await waitFor('the stalled frame to be dropped', () => staller.closed(), 10_000)
  assert.equal((await good.stats('t')).published, published, 'the good client was cut off')
})
