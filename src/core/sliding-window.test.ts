import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { MovingRate } from './rate.ts'
import { SlidingWindow } from './sliding-window.ts'

test('a sliding window never lets more than perSecond + burst events into any 1,000 ms', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 50 }),
      fc.integer({ min: 0, max: 10 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 300 }), fc.integer({ min: 1, max: 8 })), { maxLength: 300 }),
      (perSecond, burst, steps) => {
        const window = new SlidingWindow(perSecond, burst)
        const accepted: number[] = []
        let now = 0
        for (const [gap, count] of steps) {
          now += gap
          if (window.availableAt(count, now) <= now) {
            window.take(count, now)
            for (let i = 0; i < count; i++) accepted.push(now)
          }
        }
        for (let i = 0; i < accepted.length; i++) {
          const inWindow = accepted.filter((t) => t > accepted[i]! - 1000 && t <= accepted[i]!).length
          assert.ok(inWindow <= perSecond + burst, `${inWindow} events in the window ending at ${accepted[i]}`)
        }
      },
    ),
    { numRuns: 300 },
  )
})

test('availableAt says when room comes back, and it does', () => {
  const window = new SlidingWindow(3, 0)
  window.take(3, 1000)
  assert.equal(window.availableAt(1, 1500), 2000)
  assert.equal(window.availableAt(1, 2000), 2000)
  window.take(1, 2000)
  assert.equal(window.availableAt(3, 2000), 3000)
  assert.equal(window.availableAt(4, 2000), Infinity)
})

test('availableAt is the earliest moment the events fit: one millisecond sooner they do not', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 200 }),
      fc.integer({ min: 0, max: 50 }),
      fc.array(fc.integer({ min: 1, max: 20 }), { minLength: 1, maxLength: 400 }),
      (perSecond, burst, counts) => {
        const window = new SlidingWindow(perSecond, burst)
        let now = 0
        for (const wanted of counts) {
          const count = Math.min(wanted, perSecond + burst)
          const at = window.availableAt(count, now)
          assert.ok(at >= now && at !== Infinity)
          // One millisecond earlier would not have done.
          if (at > now) assert.ok(window.availableAt(count, at - 1) > at - 1)
          now = at
          window.take(count, now)
        }
      },
    ),
    { numRuns: 300 },
  )
})

test('a window over ten million per second stays small: one entry per millisecond, not per event', () => {
  const window = new SlidingWindow(10_000_000, 0)
  for (let t = 0; t < 5000; t++) {
    assert.equal(window.availableAt(1000, t), t)
    window.take(1000, t)
  }
  assert.equal(window.availableAt(10_000_000, 5000), 5999)
})

test('a moving rate follows a steady rate and decays when events stop', () => {
  const rate = new MovingRate(0, 10_000)
  for (let t = 0; t < 60_000; t += 10) rate.add(1, t)
  assert.ok(Math.abs(rate.perSecond(60_000) - 100) < 2, `rate ${rate.perSecond(60_000)}`)
  assert.ok(rate.perSecond(90_000) < 100 / Math.E ** 2, 'decays after the events stop')
})
