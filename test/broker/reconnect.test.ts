import assert from 'node:assert/strict'
import { connect, createServer, type AddressInfo, type Socket } from 'node:net'
import { test, type TestContext } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import type { ConnectionLimits } from '../../src/broker/tcp/connection.ts'
import { Engine } from '../../src/engine/engine.ts'
import { ErrorCode, hasCode } from '../../src/core/errors.ts'
import { open } from '../../src/index.ts'
import { FrameKind, FrameParser } from '../../src/protocol/frame.ts'
import { setTimeout as sleep } from 'node:timers/promises'
import { fixture, runChild } from '../helpers/child.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Reconnecting to a broker at awkward moments (the broker kill test hit both
 * of these a few times in 200 kills): the client neither waits for ever on a
 * dead attempt nor loses the credit its consumers grant while being reopened.
 */

interface Front {
  readonly url: string
  /** The broker itself, not through the front. */
  readonly brokerUrl: string
  /** Ends every connection that goes through the front (the client sees the broker go away). */
  cutAll(): void
  /** Hands the next connection to `hook` instead of piping the client's bytes to the broker. */
  takeOverNext(hook: (client: Socket, upstream: Socket) => void): void
}

/** An in-process broker behind a TCP front that pipes each connection through to it. */
async function brokerBehindFront(t: TestContext, limits: Partial<ConnectionLimits> = {}): Promise<Front> {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: null, limits })
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
    brokerUrl: `sluice://127.0.0.1:${brokerPort}`,
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

/** A takeover that holds what the client sends until `release`, then pipes as usual. */
function holdUntilReleased(): { hook: (client: Socket, upstream: Socket) => void; release: () => void } {
  let held: Buffer[] | null = []
  let pipe: (() => void) | null = null
  return {
    hook: (client, upstream) => {
      client.on('data', (data: Buffer) => {
        if (held === null) upstream.write(data)
        else held.push(data)
      })
      pipe = () => upstream.write(Buffer.concat(held!))
    },
    release: () => {
      pipe?.()
      held = null
    },
  }
}

test('a consumer the broker refuses to reopen after a reconnect reports why, and reopens once it can', async (t) => {
  const front = await brokerBehindFront(t)
  const errors: unknown[] = []
  const sluice = await open({ url: front.url, requestTimeoutMs: 3000, onError: (err) => errors.push(err) })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  const admin = await open({ url: front.brokerUrl })
  cleanup(t, () => admin.close())
  await sluice.createTopic('orders', { partitions: 1 })
  const seen: string[] = []
  await sluice.subscribe<string>('orders', 'billing', (m) => void seen.push(m.data))

  // The topic goes while the client is away: the broker refuses the reopen with TOPIC_NOT_FOUND.
  const hold = holdUntilReleased()
  front.takeOverNext(hold.hook)
  front.cutAll()
  await admin.deleteTopic('orders')
  hold.release()
  await waitFor(
    'the refused reopen to be reported',
    () => errors.some((e) => hasCode(e, ErrorCode.TopicNotFound)),
    5000,
  )

  // Once the topic is back, the consumer is open again and gets what is published.
  await admin.createTopic('orders', { partitions: 1 })
  await admin.publish('orders', 'again')
  await waitFor('the consumer to receive the message', () => seen.includes('again'), 10_000)
})

test('a consumer whose reopen timed out while the broker was still opening it is reopened by the retry, not refused with CONFLICT', async (t) => {
  const front = await brokerBehindFront(t)
  const errors: unknown[] = []
  const sluice = await open({ url: front.url, requestTimeoutMs: 500, onError: (err) => errors.push(err) })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  const admin = await open({ url: front.brokerUrl })
  cleanup(t, () => admin.close())
  await sluice.createTopic('orders', { partitions: 1 })
  const seen: string[] = []
  // Credit for one message at a time: what the late open carried runs out after one delivery.
  await sluice.subscribe<string>('orders', 'billing', (m) => void seen.push(m.data), { concurrency: 1, prefetch: 0 })
  await admin.publish('orders', 'before')
  await waitFor('the first message', () => seen.includes('before'), 5000)

  // After the reconnect, the broker gets the HELLO but the reopen only once the client has given up on it: the
  // broker opens that consumer late, and then gets the client's retry of the same open.
  let held: Buffer[] | null = []
  let upstreamOf: Socket | null = null
  front.takeOverNext((client, upstream) => {
    upstreamOf = upstream
    const parser = new FrameParser()
    client.on('data', (data: Buffer) => {
      const kinds = parser.push(data).map((f) => f.kind)
      if (held === null || kinds.includes(FrameKind.Hello)) upstream.write(data)
      else held.push(data)
    })
  })
  front.cutAll()
  await waitFor('the reopen to time out', () => errors.some((e) => hasCode(e, ErrorCode.Timeout)), 10_000)
  upstreamOf!.write(Buffer.concat(held))
  held = null

  const after = ['after-1', 'after-2', 'after-3', 'after-4']
  await admin.publishBatch(
    'orders',
    after.map((data) => ({ data })),
  )
  await waitFor(
    'the reopened consumer to receive the next messages',
    () => after.every((m) => seen.includes(m)),
    10_000,
  )
  assert.deepEqual(
    errors.filter((e) => hasCode(e, ErrorCode.Conflict)),
    [],
    'no reopen was refused as a duplicate',
  )
})

test('a reconnect attempt to a broker that never answers HELLO gives up after connectTimeoutMs and tries again', async (t) => {
  const front = await brokerBehindFront(t)
  const sluice = await open({ url: front.url, connectTimeoutMs: 300, requestTimeoutMs: 2000 })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('orders', { partitions: 1 })

  // A broker that accepts and then hangs (stopped, overloaded): the HELLO goes nowhere.
  let hung = 0
  front.takeOverNext((client) => client.once('data', () => hung++))
  front.cutAll()
  // Without a bound on the attempt this waits for the broker to drop it, and fails with TIMEOUT.
  await sluice.publish('orders', 'after', { timeoutMs: 500 })

  assert.equal(hung, 1)
  const stored = await sluice.read('orders', 0, 0, 10)
  assert.deepEqual(
    stored.map((m) => m.data),
    ['after'],
  )
})

test('close() during a reconnect handshake wins: the client does not come back when the broker answers', async (t) => {
  const front = await brokerBehindFront(t)
  const sluice = await open({ url: front.url, requestTimeoutMs: 3000 })
  await sluice.createTopic('orders', { partitions: 1 })

  // The HELLO of the reconnect is held at the front while the client closes, then reaches the broker.
  const hold = holdUntilReleased()
  let attempt: Socket | null = null
  front.takeOverNext((client, upstream) => {
    attempt = client
    hold.hook(client, upstream)
  })
  front.cutAll()
  await waitFor('the reconnect attempt', () => attempt !== null, 5000)
  await sluice.close({ drain: false, timeoutMs: 0 })
  const ended = new Promise<void>((resolve) => attempt!.once('close', () => resolve()))
  hold.release()

  // Without close winning, the WELCOME brings the closed client back to a ready connection that stays open.
  let done = false
  void ended.then(() => (done = true))
  try {
    await waitFor('the attempt to end', () => done, 2000)
  } finally {
    // Else a revived client would keep the broker from stopping.
    attempt!.destroy()
  }
  await assert.rejects(sluice.publish('orders', 'late'), (err) => hasCode(err, ErrorCode.Closed))
})

test("a connection's consumer limit counts consumers still being opened", async (t) => {
  const front = await brokerBehindFront(t, { maxConsumers: 2 })
  const sluice = await open({ url: front.url })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('orders', { partitions: 1 })

  // Opened at once, the three OPEN_CONSUMERs reach the broker before any of them is done.
  const opened = await Promise.allSettled(
    ['a', 'b', 'c'].map((name) => sluice.subscribe('orders', name, () => undefined)),
  )

  const refused = opened.filter((r) => r.status === 'rejected')
  assert.equal(refused.length, 1)
  assert.ok(hasCode(refused[0]!.reason, ErrorCode.InvalidArgument))
})

test('closing a client while it backs off between reconnect attempts lets its process exit at once', async (t) => {
  const broker = runChild(t, fixture('broker.ts'), ['memory', '0'])
  const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
  const client = runChild(t, fixture('close-in-backoff.ts'), [`sluice://127.0.0.1:${port}`])
  await client.waitForLine(/^connected$/)
  await broker.kill9()

  // In the broker's place, a server that ends every connection at once: each one is a failed attempt, and the
  // backoff after the eighth is 2.5 to 5 s (50 ms doubling, capped at 5 s, times 0.5 to 1).
  let attempts = 0
  const server = createServer((socket) => {
    attempts++
    socket.destroy()
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  cleanup(t, () => new Promise((resolve) => server.close(resolve)))
  await waitFor('eight reconnect attempts', () => attempts >= 8, 30_000)

  const closing = Date.now()
  client.process.send('close')
  // Exiting on its own, not killed: the process ends when nothing holds it.
  const exit = await Promise.race([client.exited, sleep(10_000, null, { ref: false }).then(() => 'still running')])
  const tookMs = Date.now() - closing
  assert.equal(exit, 0)
  assert.ok(client.lines.includes('closed'))
  assert.ok(tookMs < 2000, `the process took ${tookMs} ms to exit after close (the backoff left was at least 2.5 s)`)
})
