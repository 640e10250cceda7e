/** Helpers for testing code that uses Sluice. */
export { FakeClock } from './core/clock.ts'
