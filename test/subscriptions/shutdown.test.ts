import assert from 'node:assert/strict'
import { test } from 'node:test'
import { open } from '../../src/index.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

test('on SIGTERM a service drains: running handlers finish, their acks land, prefetched messages go back, exit 0', async (t) => {
  const dir = await tempDir(t)
  let sluice = await open({ url: `file:${dir}` })
  await sluice.createTopic('jobs')
  await sluice.publishBatch(
    'jobs',
    Array.from({ length: 10 }, (_, i) => ({ data: i })),
  )
  await sluice.close()

  const child = runChild(t, fixture('sigterm-consumer.ts'), [dir])
  await child.waitForLine(/^ready$/)
  await child.waitForLine(/^started/)
  child.process.kill('SIGTERM')
  assert.equal(await child.exited, 0)
  const started = child.lines.filter((l) => l.startsWith('started')).map((l) => Number(l.split(' ')[1]))
  const finished = child.lines.filter((l) => l.startsWith('finished')).map((l) => Number(l.split(' ')[1]))
  assert.ok(child.lines.includes('signal SIGTERM'))
  assert.ok(started.length >= 1 && started.length <= 4, `started ${started.length}`)
  assert.deepEqual(finished.sort(), started.sort(), 'every running handler finished before exit')

  sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  const rest: number[] = []
  await sluice.subscribe<number>('jobs', 'workers', (m) => {
    rest.push(m.data)
    assert.equal(m.attempt, 1, 'a released (prefetched, never started) message comes back as a first delivery')
  })
  await waitFor('the remaining messages', () => rest.length === 10 - finished.length)
  for (const value of finished)
    assert.ok(!rest.includes(value), `message ${value} was acknowledged before exit, yet came back`)
})
