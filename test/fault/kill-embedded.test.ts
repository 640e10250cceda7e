import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { open } from '../../src/index.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { History, judge } from './history.ts'
import { reportFigures, scale } from './report.ts'

const kills = scale('SLUICE_CRASH_KILLS', 20)

test(`every message receipted under fsync survives ${kills} kill -9s of the embedded engine's process at random moments, once, in key order, with no offset gaps`, async (t) => {
  const seed = runSeed()
  t.diagnostic(
    `seed ${seed} (replay with SLUICE_SEED=${seed}), segment bytes ${process.env['SLUICE_SEGMENT_BYTES'] ?? 'default'}`,
  )
  const random = seededRandom(seed)
  const dir = await tempDir(t)
  const history = new History(seed)
  let killedBeforeReady = 0
  const started = Date.now()
  for (let run = 0; run < kills; run++) {
    const child = runChild(t, fixture('crash-publisher.ts'), [dir, `r${run}`, '16'])
    if (random() < 0.2) {
      // Sometimes while it is still opening (and recovering from the last kill).
      await sleep(random() * 400)
      if (!child.lines.includes('ready')) killedBeforeReady++
    } else {
      await child.waitForLine(/^ready$/)
      await sleep(10 + random() * 250)
    }
    await child.kill9()
    for (const line of child.lines) {
      const [word, producer, counter, a, b] = line.split(' ')
      if (word === 'try') history.attempt(producer!, Number(counter), a === '-' ? undefined : a)
      if (word === 'receipt') history.ack(producer!, Number(counter), { partition: Number(a), offset: Number(b) })
    }
  }

  const sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  for (let partition = 0; partition < 4; partition++) {
    for (let from = 0; ;) {
      const batch = await sluice.read<{ id: string; payload: string }>('crash', partition, from, 5000)
      if (batch.length === 0) break
      for (const message of batch) {
        assert.equal(message.id, message.data.id, `partition ${partition} offset ${message.offset}: id and body differ`)
        assert.equal(message.data.payload.length, 200)
        history.read(message.id, { partition, offset: message.offset })
      }
      from = batch.at(-1)!.offset + 1
    }
  }
  const report = await judge(t, history, 'kill-embedded', { wholeLog: true })
  t.diagnostic(`${kills} kills (${killedBeforeReady} during open)`)
  assert.ok(report.acknowledged > kills * 10, `too few receipts (${report.acknowledged}) for the test to mean much`)
  await reportFigures('kill-embedded', {
    kills,
    segmentBytes: process.env['SLUICE_SEGMENT_BYTES'] ?? 'default',
    killedDuringOpen: killedBeforeReady,
    ms: Date.now() - started,
    ...report,
  })

  const after = await sluice.publish('crash', { id: 'after', payload: 'y'.repeat(200) }, { key: 'key-1' })
  assert.equal((await sluice.read('crash', after.partition, after.offset, 1))[0]!.id, after.id)
})
