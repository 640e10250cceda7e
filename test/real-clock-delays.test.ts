import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { open } from '../src/index.ts'
import { tempDir } from './helpers/temp-dir.ts'
import { cleanup } from './helpers/cleanup.ts'

const targets = [
  { name: 'file', url: async (t: import('node:test').TestContext) => `file:${await tempDir(t)}` },
  { name: 'memory', url: () => Promise.resolve('memory:') },
]

for (const target of targets) {
  test(`${target.name}: a message delayed by 30 days waits quietly on the real clock (no 1 ms timer, no TimeoutOverflowWarning)`, async (t) => {
    const warnings: Error[] = []
    const onWarning = (warning: Error): void => void warnings.push(warning)
    process.on('warning', onWarning)
    cleanup(t, () => process.off('warning', onWarning))
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    await sluice.createTopic('later')
    await sluice.publish('later', 'next month', { delayMs: 30 * 86_400_000 })
    const got: unknown[] = []
    await sluice.subscribe('later', 's', (m) => void got.push(m.data))
    // Nothing is due for 30 days: waiting shows what the engine does meanwhile.
    await sleep(200)
    assert.deepEqual(got, [], 'the delayed message was delivered early')
    assert.deepEqual(
      warnings.filter((w) => w.name === 'TimeoutOverflowWarning').map((w) => w.message),
      [],
    )
  })
}
