import assert from 'node:assert/strict'
import { test, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { realClock, systemClock } from './clock.ts'

function collectWarnings(t: TestContext): Error[] {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => void warnings.push(warning)
  process.on('warning', onWarning)
  t.after(() => process.off('warning', onWarning))
  return warnings
}

test('a real-clock timer of 30 days neither fires early nor overflows setTimeout', async (t) => {
  const warnings = collectWarnings(t)
  let fired = 0
  const cancel = systemClock.setTimer(() => {
    fired++
  }, 30 * 86_400_000)
  t.after(cancel)
  // Node runs an overflowing timeout after 1 ms and warns on the next tick: 100 ms is ample to see either.
  await sleep(100)
  assert.equal(fired, 0, 'the 30-day timer fired')
  assert.deepEqual(
    warnings.map((w) => `${w.name}: ${w.message}`),
    [],
  )
})

test('a wait longer than the longest timeout is armed in steps and fires once, after the whole wait', async () => {
  const clock = realClock(15)
  const start = performance.now()
  let fired = 0
  await new Promise<void>((resolve) => {
    clock.setTimer(
      () => {
        fired++
        resolve()
      },
      60,
      true,
    )
  })
  const elapsedMs = performance.now() - start
  // A timer counts from the event loop's cached time, which can be a few ms behind performance.now().
  assert.ok(elapsedMs >= 50, `fired after ${elapsedMs.toFixed(1)} ms of 60 (one 15 ms step would fire at 15)`)
  await sleep(30)
  assert.equal(fired, 1)
})

test('cancelling a stepped timer between its steps stops it', async () => {
  const clock = realClock(10)
  let fired = 0
  const cancel = clock.setTimer(() => {
    fired++
  }, 200)
  await sleep(25) // past the first steps, well before the end
  cancel()
  await sleep(250)
  assert.equal(fired, 0)
})
