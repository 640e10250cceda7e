import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import type { AutoscaleDecision } from '../../src/core/autoscaler.ts'
import { FakeClock } from '../../src/core/clock.ts'
import { Sluice } from '../../src/core/sluice.ts'
import { Engine } from '../../src/engine/engine.ts'
import { cleanup } from '../helpers/cleanup.ts'

/**
 * Autoscaling on an injected clock: a 10 ms handler (10 ms of fake time)
 * facing a backlog. The clock moves 1 ms at a time, letting every handler
 * that is due finish and the next start between steps, so what the
 * autoscaler measures is exactly the handler's 10 ms.
 */
test('a 10 ms handler facing a backlog scales up toward max, time to empty falls, and it scales back to min when idle, without flapping', async (t) => {
  const clock = new FakeClock(Date.UTC(2026, 10, 28))
  const engine = await Engine.open({ clock })
  const sluice = new Sluice(engine, { clock })
  cleanup(t, async () => {
    await sluice.close({ drain: false, timeoutMs: 0 })
    await engine.close()
  })
  const step = async (ms: number): Promise<void> => {
    for (let i = 0; i < ms; i++) {
      clock.advance(1)
      for (let j = 0; j < 4; j++) await turn()
    }
  }
  await sluice.createTopic('jobs', { partitions: 4 })
  const sleep = (ms: number): Promise<void> => new Promise((resolve) => clock.setTimer(resolve, ms))
  let handled = 0
  let running = 0
  let mostRunning = 0
  const sub = await sluice.subscribe(
    'jobs',
    'workers',
    async () => {
      running++
      mostRunning = Math.max(mostRunning, running)
      await sleep(10)
      running--
      handled++
    },
    { concurrency: { min: 1, max: 32, targetTimeToEmptyMs: 2000 } },
  )
  const decisions: AutoscaleDecision[] = []
  sub.on('consumer.autoscale', (d) => decisions.push(d))
  assert.equal(sub.concurrency, 1)

  // A backlog far beyond what one handler (100 msgs/s) clears in the 2 s target, plus steady arrivals of 200 msgs/s:
  // emptying it in time takes more than the 32 handlers allowed.
  const backlog = 8000
  for (let i = 0; i < backlog; i += 500) {
    await sluice.publishBatch(
      'jobs',
      Array.from({ length: 500 }, (_, j) => ({ data: i + j })),
    )
  }
  let published = backlog
  const timeToEmpty: number[] = []
  for (let second = 0; second < 30 && handled < published; second++) {
    await sluice.publishBatch(
      'jobs',
      Array.from({ length: 200 }, (_, j) => ({ data: published + j })),
    )
    published += 200
    await step(1000)
    const stats = (await sluice.stats('jobs')).subscriptions.find((s) => s.subscription === 'workers')!
    if (stats.timeToEmptyMs !== null && stats.depth > 0) timeToEmpty.push(stats.timeToEmptyMs)
  }
  assert.equal(handled, published, `only ${handled} of ${published} handled in 30 s`)
  const peak = Math.max(...decisions.map((d) => d.to))
  assert.ok(peak >= 16, `concurrency peaked at ${peak} of 32`)
  assert.ok(mostRunning <= 32, `${mostRunning} handlers ran at once, past max`)
  // Time to empty, as stats measure it, falls while the backlog drains.
  assert.ok(timeToEmpty.length >= 3, `time to empty was measured only ${timeToEmpty.length} times`)
  assert.ok(
    timeToEmpty[timeToEmpty.length - 1]! < timeToEmpty[0]! / 2,
    `time to empty went from ${timeToEmpty[0]} ms to ${timeToEmpty[timeToEmpty.length - 1]} ms`,
  )

  // Steady arrivals of 200 msgs/s (two handlers' worth) for 20 s: concurrency settles and holds, it does not hunt.
  const settled: number[] = []
  for (let second = 0; second < 20; second++) {
    await sluice.publishBatch(
      'jobs',
      Array.from({ length: 200 }, (_, j) => ({ data: published + j })),
    )
    published += 200
    await step(1000)
    if (second >= 10) settled.push(sub.concurrency)
  }
  assert.equal(new Set(settled).size, 1, `concurrency kept changing under steady load: ${settled.join(' ')}`)
  assert.ok(settled[0]! >= 2 && settled[0]! <= 4, `settled at ${settled[0]} handlers for 2 handlers' worth of work`)

  // Idle: back to min within a minute, and no evaluation raises it again.
  await step(60_000)
  assert.equal(handled, published)
  assert.equal(sub.concurrency, 1)
  // No flapping: concurrency only rises, then only falls (one change of direction at most).
  const changes = decisions.filter((d) => d.to !== d.from)
  const directions = changes.map((d) => Math.sign(d.to - d.from))
  const turns = directions.filter((d, i) => i > 0 && d !== directions[i - 1]).length
  assert.ok(turns <= 1, `concurrency changed direction ${turns} times: ${changes.map((d) => d.to).join(' ')}`)
  // Each decision says why, with the inputs it used.
  const grown = changes.find((d) => d.to > d.from)!
  assert.ok(grown.inputs.depth > 0 && grown.reason.length > 0)
  t.diagnostic(
    `concurrency: ${[1, ...changes.map((d) => d.to)].join(' -> ')}; time to empty ${timeToEmpty.join(', ')} ms`,
  )
})
