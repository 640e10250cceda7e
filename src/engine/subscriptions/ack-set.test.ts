import assert from 'node:assert/strict'
import { test } from 'node:test'
import fc from 'fast-check'
import { AckSet } from './ack-set.ts'

test('the floor follows contiguous acknowledgements, gaps stay open', () => {
  const set = new AckSet(10)
  assert.equal(set.add(12), true)
  assert.equal(set.add(12), false)
  assert.equal(set.floor, 10)
  set.add(10)
  assert.equal(set.floor, 11)
  set.add(11)
  assert.equal(set.floor, 13)
  assert.deepEqual(set.ranges(), [])
  set.add(20)
  set.add(15)
  set.add(16)
  assert.deepEqual(set.ranges(), [
    [15, 17],
    [20, 21],
  ])
  assert.equal(set.nextUnacked(15), 17)
  assert.equal(set.nextUnacked(0), 13)
  assert.equal(set.countIn(0, 100), 13 + 3)
})

test('an acknowledgement set agrees with a plain set under any order of acks', () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 200 }), { maxLength: 300 }),
      fc.integer({ min: 0, max: 220 }),
      (acks, cut) => {
        const set = new AckSet(0)
        const model = new Set<number>()
        for (const a of acks) {
          assert.equal(set.add(a), !model.has(a))
          model.add(a)
        }
        let floor = 0
        while (model.has(floor)) floor++
        assert.equal(set.floor, floor)
        for (let o = 0; o < 230; o++) assert.equal(set.has(o), model.has(o), `offset ${o}`)
        let next = cut
        while (model.has(next)) next++
        assert.equal(set.nextUnacked(cut), next)
        const unacked = [...Array(Math.max(0, cut - floor)).keys()]
          .map((i) => floor + i)
          .filter((o) => !model.has(o)).length
        assert.equal(set.advanceTo(cut), unacked)
        assert.ok(set.floor >= cut)
        for (let o = 0; o < cut; o++) assert.equal(set.has(o), true)
      },
    ),
    { numRuns: 500 },
  )
})

test('taking acknowledgements back agrees with a plain set, below the floor and inside ranges', () => {
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 120 })), { maxLength: 300 }), (steps) => {
      const set = new AckSet(0)
      const model = new Set<number>()
      for (const [add, offset] of steps) {
        if (add) {
          assert.equal(set.add(offset), !model.has(offset))
          model.add(offset)
        } else {
          assert.equal(set.remove(offset), model.has(offset))
          model.delete(offset)
        }
      }
      let floor = 0
      while (model.has(floor)) floor++
      assert.equal(set.floor, floor)
      for (let o = 0; o < 130; o++) assert.equal(set.has(o), model.has(o), `offset ${o}`)
      for (const [start, end] of set.ranges()) assert.ok(start > floor && start < end, `range [${start}, ${end})`)
    }),
    { numRuns: 500 },
  )
})
