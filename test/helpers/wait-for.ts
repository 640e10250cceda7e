/**
 * Waits until a condition holds, checking after each turn of the event loop
 * (not on a timer), and fails after a timeout naming what it waited for.
 */
export { eventually as waitFor } from '../../src/core/conformance/helpers.ts'
