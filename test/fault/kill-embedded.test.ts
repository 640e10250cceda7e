import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { open } from '../src/index.ts'
import { fixture, runChild } from './helpers/child.ts'
import { runSeed, seededRandom } from './helpers/random.ts'
import { tempDir } from './helpers/temp-dir.ts'
import { cleanup } from './helpers/cleanup.ts'

const kills = Number(process.env['SLUICE_CRASH_KILLS'] ?? 20)

test(`every message receipted under fsync survives ${kills} kill -9s at random moments, once, with no offset gaps`, async (t) => {
  const seed = runSeed()
  t.diagnostic(`seed ${seed} (replay with SLUICE_SEED=${seed})`)
  const random = seededRandom(seed)
  const dir = await tempDir(t)
  const receipts = new Map<string, { partition: number; offset: number }>()
  let killedBeforeReady = 0
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
      const [word, id, partition, offset] = line.split(' ')
      if (word === 'receipt') receipts.set(id!, { partition: Number(partition), offset: Number(offset) })
    }
  }
  t.diagnostic(`${kills} kills (${killedBeforeReady} during open), ${receipts.size} receipts`)
  assert.ok(receipts.size > kills * 10, `too few receipts (${receipts.size}) for the test to mean much`)

  const sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  const seen = new Map<string, { partition: number; offset: number }>()
  for (let partition = 0; partition < 4; partition++) {
    let expected = 0
    for (;;) {
      const batch = await sluice.read<{ id: string; payload: string }>('crash', partition, expected, 5000)
      if (batch.length === 0) break
      for (const message of batch) {
        assert.equal(message.offset, expected, `partition ${partition}: offset gap`)
        assert.equal(message.id, message.data.id)
        assert.equal(message.data.payload.length, 200)
        assert.ok(!seen.has(message.id), `${message.id} is stored twice`)
        seen.set(message.id, { partition, offset: message.offset })
        expected++
      }
    }
  }
  for (const [id, receipt] of receipts) {
    assert.deepEqual(seen.get(id), receipt, `receipted message ${id} is not where its receipt says`)
  }
  t.diagnostic(
    `${seen.size} messages stored, ${seen.size - receipts.size} of them stored but not yet receipted when killed`,
  )
  const after = await sluice.publish('crash', { id: 'after', payload: 'y'.repeat(200) }, { key: 'key-1' })
  assert.equal((await sluice.read('crash', after.partition, after.offset, 1))[0]!.id, after.id)
})
