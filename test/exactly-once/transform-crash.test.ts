import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { open, type Sluice } from '../../src/index.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { startBrokerChild } from '../helpers/broker-child.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const kills = Number(process.env['SLUICE_TRANSFORM_KILLS'] ?? 20)
const total = 10_000

/** Stores the inputs in a fresh data directory. */
async function prepare(dir: string): Promise<void> {
  const sluice = await open({ url: `file:${dir}` })
  await sluice.createTopic('inputs', { partitions: 3 })
  await sluice.createTopic('results', { partitions: 2 })
  for (let i = 0; i < total; i += 1000) {
    await sluice.publishBatch(
      'inputs',
      Array.from({ length: 1000 }, (_, j) => ({ data: { n: i + j } })),
    )
  }
  await sluice.close()
}

/** Runs the pipeline against `url`, killing it -9 `kills` times at random moments, then once more after it drained. */
async function killPipeline(t: TestContext, url: string, random: () => number): Promise<void> {
  let killedWithWorkLeft = 0
  for (let round = 0; round < kills; round++) {
    const child = runChild(t, fixture('transform-pipeline.ts'), [url])
    await child.waitForLine(/^ready$/)
    await sleep(20 + random() * 200)
    if (!child.lines.includes('drained')) killedWithWorkLeft++
    await child.kill9()
  }
  const last = runChild(t, fixture('transform-pipeline.ts'), [url])
  await last.waitForLine(/^drained$/, 120_000)
  await last.kill9()
  t.diagnostic(`${kills} kills, ${killedWithWorkLeft} of them with inputs left to process`)
  assert.ok(killedWithWorkLeft >= (kills * 3) / 4, 'most kills hit the pipeline while it worked')
}

/** Exactly one correct result per input, every input acknowledged, nothing dead-lettered. */
async function checkResults(sluice: Sluice): Promise<void> {
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
}

test(`consume-transform-produce killed -9 ${kills} times over 10,000 inputs: exactly one result per input, every input acknowledged`, async (t) => {
  const seed = runSeed()
  t.diagnostic(`seed ${seed}`)
  const dir = await tempDir(t)
  await prepare(dir)
  await killPipeline(t, `file:${dir}`, seededRandom(seed))
  const sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  await checkResults(sluice)
})

// Before the fix, a transaction the broker had written when its consumer's connection dropped did not acknowledge
// its input, and the redelivery committed again: 8-20 inputs with two results per 40 kills.
test(`consume-transform-produce over the broker, its consumer killed -9 ${kills} times: exactly one result per input`, async (t) => {
  const seed = runSeed()
  t.diagnostic(`seed ${seed}`)
  const dir = await tempDir(t)
  await prepare(dir)
  const { port } = await startBrokerChild(t, dir)
  const url = `sluice://127.0.0.1:${port}`
  await killPipeline(t, url, seededRandom(seed))
  const sluice = await open({ url })
  cleanup(t, () => sluice.close())
  await checkResults(sluice)
})
