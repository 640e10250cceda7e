import assert from 'node:assert/strict'
import { test } from 'node:test'
import { ErrorCode, open, SluiceError } from '../src/index.ts'
import { fixture, runChild } from './helpers/child.ts'
import { tempDir } from './helpers/temp-dir.ts'
import { cleanup } from './helpers/cleanup.ts'

test('a second process opening a data directory gets LOCKED naming the holder', async (t) => {
  const dir = await tempDir(t)
  const holder = await open({ url: `file:${dir}` })
  cleanup(t, () => holder.close())
  await holder.createTopic('held')
  const second = runChild(t, fixture('hold-data-dir.ts'), [dir])
  const line = await second.waitForLine(/^(failed|opened)/)
  assert.match(line, /^failed /)
  const report = JSON.parse(line.slice('failed '.length)) as { code: string; message: string; details: { pid: number } }
  assert.equal(report.code, ErrorCode.Locked)
  assert.equal(report.details.pid, process.pid)
  assert.match(report.message, new RegExp(`process ${process.pid}`))
  // The holder is unaffected.
  await holder.publish('held', 'still mine')
})

test('opening a directory held by a live child fails; once the child is killed -9, its stale lock does not block', async (t) => {
  const dir = await tempDir(t)
  const child = runChild(t, fixture('hold-data-dir.ts'), [dir])
  await child.waitForLine(/^opened/)
  await assert.rejects(open({ url: `file:${dir}` }), (err: SluiceError) => {
    assert.equal(err.code, ErrorCode.Locked)
    assert.equal(err.details['pid'], child.pid)
    return true
  })
  await child.kill9()
  const sluice = await open({ url: `file:${dir}` })
  await sluice.createTopic('after-crash')
  await sluice.close()
})

test('the same process opening a data directory twice gets LOCKED', async (t) => {
  const dir = await tempDir(t)
  const first = await open({ url: `file:${dir}` })
  cleanup(t, () => first.close())
  await assert.rejects(
    open({ url: `file:${dir}` }),
    (err: SluiceError) => err.code === ErrorCode.Locked && /opened twice/.test(err.message),
  )
})

test('close releases the lock for the next opener', async (t) => {
  const dir = await tempDir(t)
  const first = await open({ url: `file:${dir}` })
  await first.close()
  const second = await open({ url: `file:${dir}` })
  await second.close()
})
