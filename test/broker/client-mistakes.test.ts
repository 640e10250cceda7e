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
