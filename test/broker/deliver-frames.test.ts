import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { open } from '../../src/index.ts'
import { encodeFrame, FrameKind, FrameParser, protocolVersion } from '../../src/protocol/frame.ts'
import { Op } from '../../src/protocol/ops.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { openConsumerFrame } from '../helpers/raw-consumer.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * DELIVER frames are bounded by bytes as well as by count, and the broker lets
 * them leave before leasing more: a consumer that reads promptly gets large
 * messages however much credit it granted, and is not mistaken for a stuck one
 * and cut off at the send buffer bound.
 */

const bufferLimit = 16 * 1024 * 1024

test('a prompt consumer with credit for more than the send buffer bound of large messages gets them all, and is not cut off', async (t) => {
  const dir = await tempDir(t)
  const broker = runChild(t, fixture('broker.ts'), [dir, '0'], { SLUICE_MAX_BUFFERED_BYTES: String(bufferLimit) })
  const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
  const errors: unknown[] = []
  const sluice = await open({ url: `sluice://127.0.0.1:${port}`, onError: (err) => errors.push(err) })
  cleanup(t, () => sluice.close())
  await sluice.createTopic('large', { partitions: 8, durability: 'interval', maxMessageBytes: 4 * 1024 * 1024 })

  // 40 messages of 3 MiB: 120 MiB in the backlog. The consumer grants credit for 16 + 16 = 32 of them
  // (96 MiB): leased and written in one go, as before, that is six times the buffer bound.
  const payload = Buffer.alloc(3 * 1024 * 1024, 7)
  for (let i = 0; i < 40; i += 4) {
    await sluice.publishBatch(
      'large',
      Array.from({ length: 4 }, (_, j) => ({ data: payload, id: `m-${i + j}` })),
    )
  }
  const seen = new Set<string>()
  await sluice.subscribe(
    'large',
    'readers',
    (m) => {
      assert.equal((m.data as Buffer).length, payload.length)
      seen.add(m.id)
    },
    { concurrency: 16, prefetch: 16, startAt: 'earliest' },
  )
  await waitFor('all 40 large messages at the consumer', () => seen.size === 40, 60_000)
  assert.deepEqual(errors, [], 'the consumer saw errors (its connection was cut off?)')
  const { connections } = (await broker.ask({ memory: true })) as { connections: number }
  assert.equal(connections, 1, 'the consuming connection was closed by the broker')
})

test('closing a consumer whose client does not read gives its messages back at once, not after the stall timeout', async (t) => {
  const dir = await tempDir(t)
  const broker = runChild(t, fixture('broker.ts'), [dir, '0'], { SLUICE_MAX_BUFFERED_BYTES: String(bufferLimit) })
  const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
  const sluice = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => sluice.close())
  await sluice.createTopic('backlog', { partitions: 1, durability: 'interval' })
  // 32 MiB waiting: more than the kernel and the 4 MiB pause threshold take, so the push waits for this client.
  const payload = Buffer.alloc(256 * 1024, 3)
  for (let i = 0; i < 128; i += 16) {
    await sluice.publishBatch(
      'backlog',
      Array.from({ length: 16 }, (_, j) => ({ data: payload, id: `m-${i + j}` })),
    )
  }

  // A client that opens a consumer, never reads, and closes the consumer.
  const socket = connect({ host: '127.0.0.1', port })
  cleanup(t, () => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.pause()
  socket.on('error', () => undefined)
  socket.write(encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'not-reading' }))
  socket.write(openConsumerFrame('backlog', 'work', 1_000))
  await new Promise((resolve) => setTimeout(resolve, 1000))
  const closedAt = performance.now()
  socket.write(encodeFrame(FrameKind.Request, 2, [Op.CloseConsumer, { consumer: 1 }]))

  // Its leases go back when the broker closes the consumer: another consumer gets every message well
  // before the 10 s after which the broker would cut off the stalled client anyway.
  const seen = new Set<string>()
  await sluice.subscribe('backlog', 'work', (m) => void seen.add(m.id), {
    concurrency: 8,
    ordering: 'none',
  })
  await waitFor('every message at the other consumer', () => seen.size === 128, 30_000)
  const tookMs = performance.now() - closedAt
  assert.ok(tookMs < 6000, `the other consumer had every message ${Math.round(tookMs)} ms after the close`)
})

test('a consumer that reads slowly is not cut off as stalled; one that stops reading is', async (t) => {
  const dir = await tempDir(t)
  const broker = runChild(t, fixture('broker.ts'), [dir, '0'], {
    SLUICE_MAX_BUFFERED_BYTES: String(bufferLimit),
    SLUICE_STALLED_READER_MS: '2000',
  })
  const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
  const connections = async (): Promise<number> =>
    ((await broker.ask({ memory: true })) as { connections: number }).connections
  const sluice = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => sluice.close())
  // 64 MiB waiting, over 8 partitions (each leases ahead a few MiB): far more than the slow reader below takes.
  await sluice.createTopic('backlog', { partitions: 8, durability: 'interval' })
  const payload = Buffer.alloc(256 * 1024, 5)
  for (let i = 0; i < 256; i += 16) {
    await sluice.publishBatch(
      'backlog',
      Array.from({ length: 16 }, () => ({ data: payload })),
    )
  }
  const socket = connect({ host: '127.0.0.1', port })
  cleanup(t, () => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.on('error', () => undefined)
  socket.pause()
  socket.write(encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'slow-reader' }))
  socket.write(openConsumerFrame('backlog', 'work', 1_000))

  // Slow: a little every 250 ms for 6 s (three times the stall timeout), granting one more delivery each
  // time as a client handling what it reads does. Whole frames take longer than the timeout at this pace:
  // what the client sends is its sign of life.
  for (let i = 0; i < 24; i++) {
    socket.read()
    socket.write(encodeFrame(FrameKind.Credit, 1, 1))
    await new Promise((resolve) => setTimeout(resolve, 250))
  }
  assert.equal(await connections(), 2, 'a client that kept reading, slowly, was cut off as stalled')

  // Stopped: cut off once 2 s pass without progress.
  const stoppedAt = performance.now()
  await waitFor('the stalled client to be cut off', async () => (await connections()) === 1, 15_000)
  const after = performance.now() - stoppedAt
  assert.ok(after < 8000, `cut off ${Math.round(after)} ms after it stopped reading`)
})

test('deliveries leave in frames of at most 64 messages and about 1 MiB', async (t) => {
  const dir = await tempDir(t)
  const broker = runChild(t, fixture('broker.ts'), [dir, '0'])
  const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
  const sluice = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => sluice.close())
  await sluice.createTopic('mixed', { partitions: 1, durability: 'interval' })
  // 300 small messages, then 12 of 400 KiB: frames are cut by count first, by bytes after.
  for (let i = 0; i < 300; i += 100)
    await sluice.publishBatch(
      'mixed',
      Array.from({ length: 100 }, (_, j) => ({ data: `small ${i + j}` })),
    )
  const large = Buffer.alloc(400 * 1024, 9)
  await sluice.publishBatch(
    'mixed',
    Array.from({ length: 12 }, () => ({ data: large })),
  )

  const socket = connect({ host: '127.0.0.1', port })
  cleanup(t, () => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  const frames: unknown[][] = []
  const parser = new FrameParser()
  socket.on('data', (data: Buffer) => {
    for (const frame of parser.push(data)) if (frame.kind === FrameKind.Deliver) frames.push(frame.body as unknown[][])
  })
  socket.write(encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'frame-counter' }))
  socket.write(openConsumerFrame('mixed', 'work', 1_000))
  await waitFor('all 312 delivered', () => frames.reduce((n, f) => n + f.length, 0) === 312, 30_000)

  for (const frame of frames) {
    assert.ok(frame.length <= 64, `a frame of ${frame.length} messages`)
    const bytes = frame.reduce((n: number, record) => n + ((record as unknown[])[3] as Uint8Array).length, 0)
    assert.ok(frame.length === 1 || bytes <= 1024 * 1024, `a frame of ${frame.length} messages and ${bytes} bytes`)
  }
  assert.ok(frames.length >= 300 / 64 + 12 / 2, `${frames.length} frames`)
})
