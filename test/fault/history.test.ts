import assert from 'node:assert/strict'
import { test } from 'node:test'
import { failures, History } from './history.ts'

// The checker judges every fault run, so it must catch each anomaly it names.

function clean(): History {
  const h = new History(7)
  for (let c = 0; c < 4; c++) {
    h.attempt('p', c, 'k')
    h.ack('p', c, { partition: 0, offset: c })
    h.read(History.id('p', c), { partition: 0, offset: c })
  }
  return h
}

test('a clean history has no anomalies', () => {
  const report = clean().check({ wholeLog: true })
  assert.deepEqual(failures(report), [])
  assert.equal(report.acknowledged, 4)
  assert.equal(report.read, 4)
})

test('an acknowledged value never read is lost', () => {
  const h = clean()
  h.attempt('p', 4, 'k')
  h.ack('p', 4, { partition: 0, offset: 4 })
  const report = h.check()
  assert.equal(report.lost, 1)
  assert.match(failures(report).join(), /lost: 1 \(p:4 acknowledged at 0\/4/)
})

test('a value read but never attempted is unexpected', () => {
  const h = clean()
  h.read('q:0', { partition: 0, offset: 4 })
  assert.equal(h.check().unexpected, 1)
})

test('a value read but not acknowledged is recovered, which is allowed', () => {
  const h = clean()
  h.attempt('p', 4, 'k')
  h.read(History.id('p', 4), { partition: 0, offset: 4 })
  const report = h.check({ wholeLog: true })
  assert.equal(report.recovered, 1)
  assert.deepEqual(failures(report), [])
})

test('repeat deliveries are counted and allowed; a value stored at two offsets is not', () => {
  const h = clean()
  h.read(History.id('p', 1), { partition: 0, offset: 1 })
  let report = h.check()
  assert.equal(report.duplicates, 1)
  assert.equal(report.duplicateRate, 0.25)
  assert.deepEqual(failures(report), [])
  h.read(History.id('p', 1), { partition: 0, offset: 9 })
  report = h.check()
  assert.equal(report.storedTwice, 1)
  assert.ok(failures(report).some((f) => f.startsWith('storedTwice')))
})

test('values of one producer and key out of counter order, or split across partitions, are order violations', () => {
  const h = new History(1)
  const put = (c: number, partition: number, offset: number): void => {
    h.attempt('p', c, 'k')
    h.read(History.id('p', c), { partition, offset })
  }
  put(0, 0, 0)
  put(1, 0, 2)
  put(2, 0, 1)
  put(3, 1, 0)
  assert.equal(h.check().orderViolations, 2)
  // Other keys and keyless values do not chain.
  const other = new History(1)
  other.attempt('p', 0, 'a')
  other.read('p:0', { partition: 0, offset: 5 })
  other.attempt('p', 1, 'b')
  other.read('p:1', { partition: 0, offset: 1 })
  other.attempt('p', 2)
  other.read('p:2', { partition: 0, offset: 0 })
  assert.equal(other.check().orderViolations, 0)
})

test('missing offsets are gaps when the whole log was read', () => {
  const h = clean()
  h.attempt('p', 9)
  h.read(History.id('p', 9), { partition: 0, offset: 7 })
  assert.equal(h.check({ wholeLog: true }).offsetGaps, 3)
  assert.equal(h.check().offsetGaps, 0)
})

test('a value read elsewhere than its acknowledgement said is misplaced', () => {
  const h = new History(1)
  h.attempt('p', 0)
  h.ack('p', 0, { partition: 1, offset: 0 })
  h.read('p:0', { partition: 0, offset: 0 })
  assert.equal(h.check().misplaced, 1)
})
