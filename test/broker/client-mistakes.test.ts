import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import { ErrorCode, hasCode } from '../../src/core/errors.ts'
import { Engine } from '../../src/engine/engine.ts'
import { open } from '../../src/index.ts'
import { cleanup } from '../helpers/cleanup.ts'

/** Mistakes a new user makes with a broker get an error that says what is wrong and what to do. */

test('a publish over the frame limit is MESSAGE_TOO_LARGE naming --max-frame-bytes, and nothing is stored', async (t) => {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: null, limits: { maxFrameBytes: 64 * 1024 } })
  const { port } = await broker.start()
  cleanup(t, () => broker.stop())
  const sluice = await open({ url: `sluice://127.0.0.1:${port}` })
  cleanup(t, () => sluice.close())
  await sluice.createTopic('big')
  await assert.rejects(sluice.publish('big', Buffer.alloc(40 * 1024)), (err: unknown) => {
    assert.ok(hasCode(err, ErrorCode.MessageTooLarge), String(err))
    assert.match(err.message, /frame limit of 65536 bytes/)
    assert.match(err.message, /sluice serve --max-frame-bytes/)
    assert.equal(err.details['maxFrameBytes'], 65536)
    return true
  })
  await sluice.publish('big', Buffer.alloc(1024))
  assert.equal((await sluice.read('big', 0)).length, 1, 'only the message that fits')
})

test("a client given the broker's HTTP port fails at once with PROTOCOL saying so, not with a 1213486160-byte frame", async (t) => {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: 0 })
  const { httpPort } = await broker.start()
  cleanup(t, () => broker.stop())
  const started = Date.now()
  await assert.rejects(open({ url: `sluice://127.0.0.1:${httpPort}`, connectTimeoutMs: 20_000 }), (err: unknown) => {
    assert.ok(hasCode(err, ErrorCode.Protocol), String(err))
    assert.match(err.message, /looks like the broker's HTTP port; the protocol port is 7420 by default/)
    assert.doesNotMatch(err.message, /1213486160/)
    assert.equal(err.details['port'], httpPort)
    return true
  })
  assert.ok(Date.now() - started < 10_000, 'refused at the first answer, not retried until connectTimeoutMs')
})
