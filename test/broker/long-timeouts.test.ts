import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { Broker } from '../../src/broker/server.ts'
import { ErrorCode, SluiceError } from '../../src/core/errors.ts'
import { Engine } from '../../src/engine/engine.ts'
import { open } from '../../src/index.ts'
import { encodeFrame, FrameKind, FrameParser, protocolVersion, type Frame } from '../../src/protocol/frame.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { waitFor } from '../helpers/wait-for.ts'

/**
 * Durations past 2^31-1 ms, which `setTimeout` would arm as 1 ms: the broker's
 * and the client's timers go through the capped clock, so a long limit is long.
 */

test('a request timeout plus a publish wait past 2^31-1 ms lets the publish wait, not time out at once', async (t) => {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: null })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  const sluice = await open({ url: `sluice://127.0.0.1:${port}`, requestTimeoutMs: 2 ** 31 - 1 })
  cleanup(t, () => sluice.close({ drain: false, timeoutMs: 0 }))
  await sluice.createTopic('full', { limits: { maxMessages: 1, overflow: 'block' } })
  await sluice.publish('full', 'the one that fits')
  const started = performance.now()
  const err = await sluice.publish('full', 'waits for room', { timeoutMs: 300 }).then(
    () => assert.fail('a publish to a full topic was stored'),
    (e: unknown) => e,
  )
  assert.ok(err instanceof SluiceError)
  assert.equal(err.code, ErrorCode.Timeout)
  // The broker's answer after the wait, not the client's request timer firing after 1 ms.
  assert.doesNotMatch(err.message, /got no answer from the broker/)
  assert.ok(performance.now() - started >= 250, `the publish waited only ${performance.now() - started} ms`)
})

test('hello and frame timeouts past 2^31-1 ms do not close a quiet connection at once', async (t) => {
  const long = 2 ** 31 + 1000
  const broker = new Broker(await Engine.open({}), {
    port: 0,
    httpPort: null,
    drainTimeoutMs: long,
    limits: { helloTimeoutMs: long, frameTimeoutMs: long },
  })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  const quiet = connect({ host: '127.0.0.1', port })
  const greeted = connect({ host: '127.0.0.1', port })
  cleanup(t, () => {
    quiet.destroy()
    greeted.destroy()
  })
  const frames: Frame[] = []
  const parser = new FrameParser()
  greeted.on('data', (data: Buffer) => frames.push(...parser.push(data)))
  const quietParser = new FrameParser()
  quiet.on('data', (data: Buffer) => frames.push(...quietParser.push(data)))
  let closed = 0
  for (const socket of [quiet, greeted]) socket.on('close', () => closed++)
  greeted.write(encodeFrame(FrameKind.Hello, 0, { version: protocolVersion, client: 'long-timeouts' }))
  await waitFor('WELCOME', () => frames.some((f) => f.kind === FrameKind.Welcome), 5000)
  // Half a frame: its frame timer is armed.
  greeted.write(encodeFrame(FrameKind.Request, 1, ['listTopics', {}]).subarray(0, 6))
  // Armed as 1 ms, either timer would have closed its connection many times over by now.
  await sleep(200)
  assert.deepEqual(
    frames.filter((f) => f.kind === FrameKind.Goodbye).map((f) => f.body),
    [],
    'the broker said GOODBYE well inside its timeouts',
  )
  assert.equal(closed, 0, 'the broker closed a connection well inside its timeouts')
  assert.equal(broker.connectionCount, 2)
})
