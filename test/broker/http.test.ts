import assert from 'node:assert/strict'
import { connect } from 'node:net'
import { test } from 'node:test'
import { Broker } from '../../src/broker/server.ts'
import { Engine } from '../../src/engine/engine.ts'
import { cleanup } from '../helpers/cleanup.ts'

test('the HTTP side answers /livez, /healthz and /readyz (503 while draining), with ?verbose checks', async (t) => {
  const broker = new Broker(await Engine.open({}), { port: 0, httpPort: 0 })
  const { httpPort } = await broker.start()
  cleanup(t, () => broker.stop())
  const get = async (path: string): Promise<{ status: number; body: unknown }> => {
    const response = await fetch(`http://127.0.0.1:${httpPort}${path}`, { signal: AbortSignal.timeout(5000) })
    return { status: response.status, body: await response.json() }
  }
  assert.deepEqual(await get('/livez'), { status: 200, body: { status: 'ok' } })
  assert.deepEqual(await get('/healthz'), { status: 200, body: { status: 'ok' } })
  assert.deepEqual(await get('/readyz'), { status: 200, body: { status: 'ok' } })
  const verbose = await get('/readyz?verbose')
  assert.equal(verbose.status, 200)
  assert.deepEqual(
    (verbose.body as { checks: { name: string; ok: boolean }[] }).checks.map((c) => [c.name, c.ok]),
    [['storage', true]],
  )

  // A connected client keeps the broker draining for a moment: readiness says so.
  const { port } = broker.address
  const socket = connect({ host: '127.0.0.1', port })
  cleanup(t, () => socket.destroy())
  await new Promise<void>((resolve) => socket.once('connect', resolve))
  const stopping = broker.stop()
  const draining = await get('/readyz?verbose')
  assert.equal(draining.status, 503)
  assert.equal((draining.body as { status: string }).status, 'unavailable')
  assert.deepEqual((await get('/livez')).status, 200, 'live while draining')
  socket.destroy()
  await stopping
})
