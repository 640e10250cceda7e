import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { open } from '../../src/index.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const kills = Number(process.env['SLUICE_TRANSFORM_KILLS'] ?? 20)

test(`consume-transform-produce killed -9 ${kills} times over 10,000 inputs: exactly one result per input, every input acknowledged`, async (t) => {
  const seed = runSeed()
  t.diagnostic(`seed ${seed}`)
  const random = seededRandom(seed)
  const dir = await tempDir(t)
  const total = 10_000
  let sluice = await open({ url: `file:${dir}` })
  await sluice.createTopic('inputs', { partitions: 3 })
  await sluice.createTopic('results', { partitions: 2 })
  for (let i = 0; i < total; i += 1000) {
    await sluice.publishBatch(
      'inputs',
      Array.from({ length: 1000 }, (_, j) => ({ data: { n: i + j } })),
    )
  }
  await sluice.close()

  let killedWithWorkLeft = 0
  for (let round = 0; round < kills; round++) {
    const child = runChild(t, fixture('transform-pipeline.ts'), [dir])
    await child.waitForLine(/^ready$/)
    await sleep(20 + random() * 200)
    if (!child.lines.includes('drained')) killedWithWorkLeft++
    await child.kill9()
  }
  const last = runChild(t, fixture('transform-pipeline.ts'), [dir])
  await last.waitForLine(/^drained$/, 120_000)
  await last.kill9()
  t.diagnostic(`${kills} kills, ${killedWithWorkLeft} of them with inputs left to process`)
  assert.ok(killedWithWorkLeft >= (kills * 3) / 4, 'most kills hit the pipeline while it worked')

  sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  const perInput = new Map<number, number>()
  for (let p = 0; p < 2; p++) {
    for (let from = 0; ;) {
      const batch = await sluice.read<{ input: number; square: number }>('results', p, from, 5000)
      if (batch.length === 0) break
      for (const m of batch) {
        assert.equal(m.data.square, m.data.input * m.data.input)
        perInput.set(m.data.input, (perInput.get(m.data.input) ?? 0) + 1)
      }
      from = batch[batch.length - 1]!.offset + 1
    }
  }
  const missing = Array.from({ length: total }, (_, n) => n).filter((n) => !perInput.has(n))
  const twice = [...perInput].filter(([, count]) => count > 1)
  assert.deepEqual(missing, [], 'inputs without a result')
  assert.deepEqual(twice, [], 'inputs with more than one result')
  const stats = await sluice.stats('inputs')
  assert.equal(stats.subscriptions[0]!.depth, 0, 'every input acknowledged')
  assert.deepEqual(await sluice.deadLetters('inputs'), [], 'nothing dead-lettered')
})
