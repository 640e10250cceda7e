import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { open } from '../../src/index.ts'
import { encodeFrame, FrameKind, protocolVersion } from '../../src/protocol/frame.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { openConsumerFrame } from '../helpers/raw-consumer.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

const bufferLimit = 8 * 1024 * 1024

test("a consumer that stops reading is cut off as stalled; the broker's memory stays bounded and its messages go to others", async (t) => {
  const dir = await tempDir(t)
  const broker = runChild(t, fixture('broker.ts'), [dir, '0'], {
    SLUICE_MAX_BUFFERED_BYTES: String(bufferLimit),
    SLUICE_STALLED_READER_MS: '2000',
  })
  const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
  const url = `sluice://127.0.0.1:${port}`
  const sluice = await open({ url })
  cleanup(t, () => sluice.close())
  await sluice.createTopic('big', { partitions: 2, durability: 'interval' })
  const before = (await broker.ask({ memory: true })) as NodeJS.MemoryUsage

  // A raw client: opens a consumer with all the credit it may grant, then never reads its socket.
  const socket = connect({ host: '127.0.0.1', port })
  cleanup(t, () => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  socket.write(encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'stuck' }))
  socket.write(openConsumerFrame('big', 'work', 1_000_000))
  socket.pause()
  let closed = false
  socket.on('close', () => (closed = true))
  socket.on('error', () => undefined)

  // 128 MiB of 64 KiB messages: far past the buffer bound.
  const payload = Buffer.alloc(64 * 1024, 1)
  for (let i = 0; i < 2048; i += 64) {
    await sluice.publishBatch(
      'big',
      Array.from({ length: 64 }, (_, j) => ({ data: payload, id: `m-${i + j}` })),
    )
  }
  await waitFor(
    'the broker to cut off the stuck consumer',
    async () => ((await broker.ask({ memory: true })) as { connections: number }).connections === 1,
    30_000,
  )
  const peak = (await broker.ask({ memory: true })) as NodeJS.MemoryUsage
  const grownMiB = (peak.rss - before.rss) / 2 ** 20
  t.diagnostic(
    `broker RSS ${Math.round(before.rss / 2 ** 20)} MiB before, ${Math.round(peak.rss / 2 ** 20)} MiB after 128 MiB pushed at a consumer that does not read (bound ${bufferLimit / 2 ** 20} MiB + read-ahead)`,
  )
  assert.ok(grownMiB < 100, `broker RSS grew by ${grownMiB.toFixed(0)} MiB`)
  socket.resume()
  await waitFor('the stuck socket to close', () => closed, 10_000)

  // Its leases went back: a good consumer gets every message.
  const seen = new Set<string>()
  await sluice.subscribe('big', 'work', (m) => void seen.add(m.id), { concurrency: 16, ordering: 'none' })
  await waitFor('every message at the good consumer', () => seen.size === 2048, 60_000)
})
