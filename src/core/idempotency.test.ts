import assert from 'node:assert/strict'
import { test } from 'node:test'
import { open } from '../open.ts'
import { FakeClock } from './clock.ts'
import { cleanup } from '../../test/helpers/cleanup.ts'

test('idempotency remembers a key for its retention and then forgets it, so memory holds one retention period of keys', async (t) => {
  const clock = new FakeClock(Date.now())
  const sluice = await open({ url: 'memory:', clock })
  cleanup(t, () => sluice.close())
  const done = await sluice.idempotency('effects.done', { retentionMs: 60_000 })
  let runs = 0
  const effect = (): number => ++runs

  for (let i = 0; i < 100; i++) assert.equal((await done.once(`old-${i}`, effect)).ran, true)
  assert.equal(done.rememberedKeys, 100)
  clock.advance(30_000)
  assert.equal((await done.once('old-0', effect)).ran, false, 'a key within its retention is remembered')
  for (let i = 0; i < 10; i++) await done.once(`new-${i}`, effect)
  assert.equal(done.rememberedKeys, 110)

  clock.advance(30_001)
  // The first 100 are older than 60 s now: dropped from memory, and their effect runs again if asked.
  assert.equal(done.rememberedKeys, 10)
  assert.equal((await done.once('new-9', effect)).ran, false)
  assert.equal((await done.once('old-5', effect)).ran, true, 'a key past its retention is forgotten')
  assert.equal(done.rememberedKeys, 11)
  assert.equal(runs, 111)
})

test('idempotency reads the keys another process recorded, and not those past retention', async (t) => {
  const clock = new FakeClock(Date.now())
  const sluice = await open({ url: 'memory:', clock })
  cleanup(t, () => sluice.close())
  const first = await sluice.idempotency('shared.done', { retentionMs: 60_000 })
  await first.markDone('early')
  clock.advance(45_000)
  await first.markDone('late')
  clock.advance(20_000)
  const second = await sluice.idempotency('shared.done', { retentionMs: 60_000 })
  assert.equal(second.rememberedKeys, 1)
  assert.equal(await second.isDone('late'), true)
  assert.equal(await second.isDone('early'), false)
})
