import assert from 'node:assert/strict'
import { mkdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import type { AppendRecord } from '../../src/core/types.ts'
import { Engine } from '../../src/engine/engine.ts'
import { PowerLossFileSystem } from '../helpers/power-loss-fs.ts'
import { appendRecord } from '../helpers/records.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { failures, History, summary, type FaultReport } from './history.ts'
import { reportFigures, scale } from './report.ts'

// Power cuts simulated below the engine (test/helpers/power-loss-fs.ts): one
// engine per seed publishes until the power goes off at a random file
// operation, then a disk that cut could leave is opened and read back.

const seeds = scale('SLUICE_POWER_SEEDS', 100)
const partitions = 2
const producers = 3
const perProducer = 40

function record(id: string, key: string | null, random: () => number): AppendRecord {
  return appendRecord(id, { key, payload: Buffer.alloc(10 + Math.floor(random() * 400), id) })
}

interface SeedResult {
  readonly report: FaultReport
  /** Acknowledged under `interval`, then lost because no fsync of its partition had begun since. */
  readonly lostInInterval: number
  readonly crashedAt: number
  readonly tornWrites: number
}

async function runSeedOnce(
  base: string,
  seed: number,
  durability: 'fsync' | 'interval',
  maxOperations: number,
): Promise<SeedResult> {
  const random = seededRandom(seed)
  const live = join(base, `${seed}-live`)
  const after = join(base, `${seed}-after`)
  await mkdir(live, { recursive: true })
  const fs = new PowerLossFileSystem(live)
  fs.crashAt = 1 + Math.floor(random() * maxOperations)
  const history = new History(seed)
  // For `interval`: the file operation count at each ack, and when the last fsync of each partition began.
  const ackedAtOperation = new Map<string, { partition: number; operation: number }>()
  const syncBegan = new Map<number, number>()
  fs.onSync = (path, began) => {
    const partition = Number(/\/(\d+)\/[^/]+\.log$/.exec(path)?.[1] ?? -1)
    if (partition >= 0) syncBegan.set(partition, Math.max(syncBegan.get(partition) ?? 0, began))
  }

  let engine: Engine | null = null
  try {
    engine = await Engine.open({ dir: live, fs, onRecovery: () => undefined })
    await engine.createTopic('t', { partitions, durability, fsyncIntervalMs: 2, segmentBytes: 4096 })
    const topic = engine
    await Promise.all(
      Array.from({ length: producers }, async (_, p) => {
        for (let n = 0; n < perProducer && !fs.hasCrashed(); n++) {
          const key = n % 4 === 0 ? null : `k${(p + n) % 5}`
          const id = History.id(`p${p}`, n)
          history.attempt(`p${p}`, n, key ?? undefined)
          const [receipt] = await topic.append('t', [record(id, key, random)])
          // A receipt after the power went off was never seen by anyone.
          if (fs.hasCrashed()) return
          history.ack(`p${p}`, n, receipt!)
          ackedAtOperation.set(id, { partition: receipt!.partition, operation: fs.operations })
        }
      }),
    )
  } catch (err) {
    if (!fs.hasCrashed()) throw err
  }
  fs.crash()
  await engine?.close().catch(() => undefined)
  const { tornWrites } = await fs.materialize(after, random)

  const reopened = await Engine.open({ dir: after, onRecovery: () => undefined })
  try {
    const topics = await reopened.listTopics()
    if (topics.some((t) => t.name === 't')) {
      for (let partition = 0; partition < partitions; partition++) {
        for (let from = 0; ;) {
          const batch = await reopened.read('t', partition, from, 1000)
          if (batch.length === 0) break
          for (const m of batch) history.read(m.id, { partition, offset: m.offset })
          from = batch.at(-1)!.offset + 1
        }
      }
    }
    // The disk must take new writes after recovery.
    await reopened.createTopic('t', { partitions, durability, fsyncIntervalMs: 2, segmentBytes: 4096 })
    await reopened.append('t', [record('after', null, random)])
  } finally {
    await reopened.close()
  }
  await rm(live, { recursive: true, force: true })
  await rm(after, { recursive: true, force: true })

  let lostInInterval = 0
  if (durability === 'interval') {
    // Losing what no fsync had covered yet is what `interval` allows; take those out before judging.
    for (const [id, at] of ackedAtOperation) {
      if (at.operation >= (syncBegan.get(at.partition) ?? 0)) {
        if (history.forget(id)) lostInInterval++
      }
    }
  }
  return { report: history.check({ wholeLog: true }), lostInInterval, crashedAt: fs.crashAt, tornWrites }
}

for (const durability of ['fsync', 'interval'] as const) {
  test(`${durability}: after a power cut at any file operation, ${durability === 'fsync' ? 'nothing acknowledged is lost' : 'only what no fsync covered yet is lost'}, in order, no gaps, over ${seeds} seeds`, async (t) => {
    const first = runSeed()
    t.diagnostic(`first seed ${first} (replay one with SLUICE_SEED=<seed> SLUICE_POWER_SEEDS=1)`)
    const base = await tempDir(t)
    const started = Date.now()
    // About how many file operations a whole run takes, so crash points cover all of it.
    const maxOperations = durability === 'fsync' ? 360 : 140
    const totals = { acknowledged: 0, lost: 0, recovered: 0, lostInInterval: 0, tornWrites: 0, crashesBeforeTopic: 0 }
    const failed: string[] = []
    for (let i = 0; i < seeds; i++) {
      const seed = (first + i) >>> 0
      let result: SeedResult
      try {
        result = await runSeedOnce(base, seed, durability, maxOperations)
      } catch (err) {
        failed.push(`seed ${seed}: ${String(err)}`)
        if (failed.length >= 3) break
        continue
      }
      const found = failures(result.report)
      if (found.length > 0) failed.push(`seed ${seed} (crash at operation ${result.crashedAt}): ${found.join('; ')}`)
      if (failed.length >= 3) break
      totals.acknowledged += result.report.acknowledged
      totals.lost += result.report.lost
      totals.recovered += result.report.recovered
      totals.lostInInterval += result.lostInInterval
      totals.tornWrites += result.tornWrites
      if (result.report.attempted === 0) totals.crashesBeforeTopic++
      if (i === 0) t.diagnostic(summary(result.report))
    }
    const figures = { durability, seeds, firstSeed: first, ms: Date.now() - started, ...totals, failures: failed }
    t.diagnostic(JSON.stringify(figures))
    await reportFigures(`power-loss-${durability}`, figures)
    assert.deepEqual(failed, [])
    assert.ok(totals.acknowledged > seeds * 10, `too few acknowledgements (${totals.acknowledged}) to mean much`)
    assert.ok(
      totals.tornWrites > seeds / 10,
      'the crash points rarely left a torn write: the test is not exercising recovery',
    )
  })
}
