import type { TestContext } from 'node:test'
import type { Sluice } from '../sluice.ts'

/**
 * A way of running Sluice that the conformance suite tests. Every test gets
 * a fresh, empty instance whose clock only moves when the test says so.
 */
export interface ConformanceTarget {
  readonly name: string
  /** Opens a fresh, empty instance for one test; cleaned up when the test ends. */
  open(t: TestContext): Promise<TargetInstance>
  /** Why the whole suite is skipped on this machine, or false. */
  readonly skip?: string | false
}

export interface TargetInstance {
  readonly sluice: Sluice
  /**
   * Moves the fake clock forward by `ms` (in every process involved), in
   * steps of at most `stepMs` (default 50) with the event loop turning in
   * between, so that lease heartbeats and replies keep up as they would in
   * real time.
   */
  advance(ms: number, stepMs?: number): Promise<void>
  /** The instance's current fake time. */
  now(): number
  /**
   * Stops and starts the instance on the same storage, returning a new
   * client (the old one is closed). Absent when the target keeps nothing.
   */
  readonly restart?: () => Promise<Sluice>
  /** Opens another client of the same instance, as another process would. */
  connect(): Promise<Sluice>
}
