import assert from 'node:assert/strict'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import { Engine } from '../../src/engine/engine.ts'
import { open } from '../../src/index.ts'
import { FrameKind, FrameParser } from '../../src/protocol/frame.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Reconnecting to a broker at awkward moments (the broker kill test hit both
 * of these a few times in 200 kills): the client neither waits for ever on a
 * dead attempt nor loses the credit its consumers grant while being reopened.
 */

interface Front {
  readonly url: string
  /** Ends every connection that goes through the front (the client sees the broker go away). */
  cutAll(): void
  /** Hands the next connection to `hook` instead of piping the client's bytes to the broker. */
  takeOverNext(hook: (client: Socket, upstream: Socket) => void): void
}

/** An in-process broker behind a TCP front that pipes each connection through to it. */
async function brokerBehindFront(t: TestContext): Promise<Front> {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: null })
  const { port: brokerPort } = await broker.start()
  cleanup(t, () => broker.stop())
  const live = new Set<Socket>()
  let takeOver: ((client: Socket, upstream: Socket) => void) | null = null
  const server = createServer((client) => {
    const upstream = connect({ host: '127.0.0.1', port: brokerPort })
    client.on('error', () => undefined)
    upstream.on('error', () => undefined)
    live.add(client)
    const cut = (): void => {
      live.delete(client)
      client.destroy()
      upstream.destroy()
    }
    client.once('close', cut)
    upstream.once('close', cut)
    upstream.pipe(client)
    const hook = takeOver
    takeOver = null
    if (hook === null) client.pipe(upstream)
    else hook(client, upstream)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  cleanup(t, () => new Promise((resolve) => server.close(resolve)))
  return {
    url: `sluice://127.0.0.1:${(server.address() as AddressInfo).port}`,
    cutAll: () => {
      for (const client of live) client.destroy()
    },
    takeOverNext: (hook) => (takeOver = hook),
  }
}

test('a client reconnects when the broker closes a connection before answering HELLO', async (t) => {
  const front = await brokerBehindFront(t)
  const sluice = await open({ url: front.url, requestTimeoutMs: 3000 })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('orders', { partitions: 1 })
  await sluice.publish('orders', 'before')

  // A broker killed between accepting and answering leaves a plain FIN: no error, no WELCOME.
  let endedAfterHello = 0
  front.takeOverNext((client) =>
    client.once('data', () => {
      endedAfterHello++
      client.end()
    }),
  )
  front.cutAll()
  // Without a new attempt this fails with TIMEOUT (requestTimeoutMs + timeoutMs).
  await sluice.publish('orders', 'after', { timeoutMs: 1000 })

  assert.equal(endedAfterHello, 1)
  const stored = await sluice.read('orders', 0, 0, 10)
  assert.deepEqual(
    stored.map((m) => m.data),
    ['before', 'after'],
  )
})

test('credit a consumer grants right behind its reopen after a reconnect is not lost', async (t) => {
  const front = await brokerBehindFront(t)
  const sluice = await open({ url: front.url, requestTimeoutMs: 5000 })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('orders', { partitions: 1 })
  await sluice.publish('orders', 'first')

  const seen: string[] = []
  let firstStarted!: () => void
  const started = new Promise<void>((resolve) => (firstStarted = resolve))
  let letFirstFinish!: () => void
  const mayFinish = new Promise<void>((resolve) => (letFirstFinish = resolve))
  await sluice.subscribe<string>(
    'orders',
    'billing',
    async (m) => {
      seen.push(`${m.data}#${m.attempt}`)
      if (m.data === 'first' && m.attempt === 1) {
        firstStarted()
        await mayFinish
      }
    },
    { concurrency: 1, prefetch: 0 },
  )
  // The only slot is busy, so the consumer asks for nothing while the connection is down: it reopens with no
  // credit, and its handler finishing during the reopen makes it grant one right behind the OPEN_CONSUMER.
  await started
  front.takeOverNext((client, upstream) => {
    const parser = new FrameParser()
    let held: Buffer[] | null = []
    client.on('data', (data: Buffer) => {
      const kinds = parser.push(data).map((f) => f.kind)
      if (held === null || kinds.includes(FrameKind.Hello)) {
        upstream.write(data)
        return
      }
      held.push(data)
      if (kinds.includes(FrameKind.Request)) letFirstFinish()
      if (kinds.includes(FrameKind.Credit)) {
        // The open and the credit reach the broker together, the credit before the consumer exists there.
        upstream.write(Buffer.concat(held))
        held = null
      }
    })
  })
  front.cutAll()
  await sluice.publish('orders', 'second')

  await waitFor(
    'the reopened consumer to receive both messages',
    () => seen.includes('first#2') && seen.includes('second#1'),
    5000,
  )
})
