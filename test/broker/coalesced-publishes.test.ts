import assert from 'node:assert/strict'
import { connect, createServer, type AddressInfo } from 'node:net'
import { test, type TestContext } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import { ErrorCode, SluiceError } from '../../src/core/errors.ts'
import { Engine } from '../../src/engine/engine.ts'
import { open, type Sluice } from '../../src/index.ts'
import { FrameKind, FrameParser } from '../../src/protocol/frame.ts'
import { Op } from '../../src/protocol/ops.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { tempDir } from '../helpers/temp-dir.ts'

/**
 * The client sends publishes made in the same turn of the event loop as one
 * APPEND. Each caller still gets exactly its own receipts, and its own
 * outcome: a merged request that fails is sent again append by append.
 */

async function client(t: TestContext, dir?: string): Promise<Sluice> {
  const broker = new Broker(await Engine.open({ dir }), { port: 0, httpPort: null })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  const sluice = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  return sluice
}

test('1,000 publishes in one turn each get their own receipt, in order', async (t) => {
  const sluice = await client(t)
  await sluice.createTopic('orders', { partitions: 1 })
  const receipts = await Promise.all(Array.from({ length: 1000 }, (_, i) => sluice.publish('orders', i)))
  assert.deepEqual(
    receipts.map((r) => r.offset),
    Array.from({ length: 1000 }, (_, i) => i),
  )
  const stored = await sluice.read<number>('orders', 0, 0, 1000)
  assert.deepEqual(
    stored.map((m) => m.data),
    Array.from({ length: 1000 }, (_, i) => i),
  )
  assert.ok(receipts.every((r, i) => r.id === stored[i]!.id))
})

test("one caller's refusal is not another's: a full topic takes the first of two publishes in one turn", async (t) => {
  const sluice = await client(t)
  await sluice.createTopic('tight', { partitions: 1, limits: { maxMessages: 1 } })
  const [first, second] = await Promise.allSettled([sluice.publish('tight', 'a'), sluice.publish('tight', 'b')])
  assert.equal(first.status, 'fulfilled')
  assert.equal(second.status, 'rejected')
  assert.ok(second.reason instanceof SluiceError && second.reason.code === ErrorCode.QueueFull)
  const stored = await sluice.read('tight', 0, 0, 10)
  assert.deepEqual(
    stored.map((m) => m.data),
    ['a'],
  )
})

test('publishes still unanswered when the client closes get their receipts: stored is never reported CLOSED', async (t) => {
  const sluice = await client(t, await tempDir(t))
  await sluice.createTopic('late', { partitions: 1, durability: 'fsync' })
  const publishing = Array.from({ length: 5 }, (_, i) => sluice.publish('late', i))
  await sluice.close()
  const outcomes = await Promise.allSettled(publishing)
  assert.deepEqual(
    outcomes.map((o) => o.status),
    Array.from({ length: 5 }, () => 'fulfilled'),
  )
})

test("an APPEND names the publisher's producer id once: its records leave that field nil", async (t) => {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: null })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  // A relay between client and broker that reads the client's frames on their way.
  const appends: { producer: unknown; producers: unknown[] }[] = []
  const relay = createServer((inbound) => {
    const outbound = connect({ host: '127.0.0.1', port })
    const parser = new FrameParser()
    inbound.on('data', (data: Buffer) => {
      for (const frame of parser.push(data)) {
        if (frame.kind !== FrameKind.Request) continue
        const [op, args] = frame.body as [string, { producer?: unknown; records?: unknown[][] }]
        if (op === Op.Append)
          appends.push({ producer: args.producer, producers: (args.records ?? []).map((r) => r[6]) })
      }
      outbound.write(data)
    })
    outbound.pipe(inbound)
    inbound.on('error', () => outbound.destroy())
    outbound.on('error', () => inbound.destroy())
  })
  await new Promise<void>((resolve) => relay.listen(0, '127.0.0.1', resolve))
  cleanup(t, () => new Promise<void>((resolve) => relay.close(() => resolve())))
  const sluice = await open({ url: `sluice://127.0.0.1:${(relay.address() as AddressInfo).port}` })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('orders', { partitions: 2 })
  await Promise.all(Array.from({ length: 50 }, (_, i) => sluice.publish('orders', i)))
  await sluice.publishBatch('orders', [{ data: 'a' }, { data: 'b', key: 'k' }])

  assert.ok(appends.length >= 2, `saw ${appends.length} APPEND requests`)
  const producer = appends[0]!.producer
  assert.equal(typeof producer, 'string')
  for (const append of appends) {
    assert.equal(append.producer, producer)
    assert.deepEqual(
      append.producers,
      append.producers.map(() => null),
    )
  }
  const stored = [...(await sluice.read('orders', 0, 0, 100)), ...(await sluice.read('orders', 1, 0, 100))]
  assert.equal(stored.length, 52)
})
