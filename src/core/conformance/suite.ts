// For tests only: this module and its cases import node:test (see runConformance).
import { describe } from 'node:test'
import { atLeastOnceCases } from './cases/at-least-once.ts'
import { backpressureCases, dropOldestUnderLoadCases } from './cases/backpressure.ts'
import { capabilityCases } from './cases/capabilities.ts'
import { atMostOnceCases } from './cases/at-most-once.ts'
import { delayedCases } from './cases/delayed.ts'
import { deletedWhileConsumingCases } from './cases/deleted-while-consuming.ts'
import { exactlyOnceCases, transactionCases } from './cases/exactly-once.ts'
import { fanOutCases } from './cases/fan-out.ts'
import { gracefulCloseCases } from './cases/graceful-close.ts'
import { lifecycleCases } from './cases/lifecycle.ts'
import { orderingCases } from './cases/ordering.ts'
import { realClockCases } from './cases/real-clock.ts'
import { restartCases } from './cases/restart.ts'
import type { ConformanceTarget } from './target.ts'

/**
 * The conformance suite: behaviour tests written once against the public
 * API, run against every driver. A driver is done when it passes.
 *
 * Exported as `sluice/conformance` for drivers written elsewhere. It is for
 * tests only: it imports `node:test` and registers its cases with it, so
 * call it from a file that `node --test` runs:
 *
 *   import { runConformance } from 'sluice/conformance'
 *   runConformance({ name: 'mine', open: async (t) => ({ sluice, advance, now, connect }) })
 *
 * Each case that needs a capability reads `sluice.capabilities()`: declared,
 * the behaviour is asserted; not declared, the case asserts that the call
 * asking for it fails with UNSUPPORTED naming it. Nothing is skipped for a
 * missing capability. The behaviour cases assume the defaults (ordering
 * `key`, delivery `at-least-once`); the capabilities cases check every value.
 */
export function runConformance(target: ConformanceTarget): void {
  describe(`conformance: ${target.name}`, { skip: target.skip ?? false }, () => {
    capabilityCases(target)
    fanOutCases(target)
    orderingCases(target)
    atLeastOnceCases(target)
    atMostOnceCases(target)
    delayedCases(target)
    lifecycleCases(target)
    gracefulCloseCases(target)
    deletedWhileConsumingCases(target)
    restartCases(target)
    exactlyOnceCases(target)
    transactionCases(target)
    backpressureCases(target)
    dropOldestUnderLoadCases(target)
  })
}

/**
 * The time-driven cases on a real clock, with deadlines of a few hundred
 * milliseconds: for targets whose time cannot be faked (a server's own
 * clock). The target's `advance` waits instead of moving a fake clock.
 */
export function runRealClockConformance(target: ConformanceTarget): void {
  describe(`conformance on a real clock: ${target.name}`, { skip: target.skip ?? false }, () => {
    realClockCases(target)
  })
}

export type { ConformanceTarget, TargetInstance } from './target.ts'
export { driverView, sharedDriver } from './shared-driver.ts'
