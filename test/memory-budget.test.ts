import assert from 'node:assert/strict'
import { test } from 'node:test'
import { fixture, runChild } from './helpers/child.ts'
import { tempDir } from './helpers/temp-dir.ts'

const MiB = 1024 * 1024
const budgetMiB = 16
const backlogMiB = 512
/**
 * What the process may use beyond the budget, whatever the backlog: the
 * subscription's read-ahead (8 MiB), the spill log's read buffers and cache,
 * its sparse index (~0.4% of spilled bytes), and garbage the collector has
 * not reclaimed yet (the young generation alone is up to 48 MiB). Measured on
 * the 2-core dev machine: +152 MiB at a 512 MiB backlog, +130 MiB at 128 MiB,
 * +172 MiB at 2 GiB; without any spilling the same run costs +27 MiB.
 */
const overheadMiB = 192

test(`a memory topic with a ${budgetMiB} MiB budget takes a ${backlogMiB} MiB backlog in bounded memory and delivers every message afterwards`, async (t) => {
  const dir = await tempDir(t)
  const child = runChild(t, fixture('memory-budget.ts'), [dir, String(budgetMiB), String(backlogMiB), '4096'])
  const line = await child.waitForLine(/^\{/, 240_000)
  const run = JSON.parse(line) as {
    count: number
    baselineRss: number
    publishPeakRss: number
    peakRss: number
    storedBytes: number
    backlog: number
    delivered: number
    outOfOrder: number
    digestsMatch: boolean
  }
  const mib = (bytes: number): string => `${(bytes / MiB).toFixed(0)} MiB`
  t.diagnostic(
    `baseline ${mib(run.baselineRss)}, peak while publishing +${mib(run.publishPeakRss - run.baselineRss)}, peak overall +${mib(run.peakRss - run.baselineRss)}`,
  )
  assert.ok(run.storedBytes >= backlogMiB * MiB, `only ${mib(run.storedBytes)} stored`)
  assert.equal(run.backlog, run.count)
  assert.ok(
    run.peakRss - run.baselineRss < (budgetMiB + overheadMiB) * MiB,
    `RSS grew by ${mib(run.peakRss - run.baselineRss)}, past the budget plus ${overheadMiB} MiB`,
  )
  assert.equal(run.delivered, run.count)
  assert.equal(run.outOfOrder, 0)
  assert.ok(run.digestsMatch, 'what was consumed differs from what was published')
})
