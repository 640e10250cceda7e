/**
 * The stats maths every runtime shares: how long a subscription's backlog
 * takes to empty at the rate it is processed, and how many consumers would
 * keep up with arrivals and empty it within a target time.
 */
export interface DrainFigures {
  /** depth / processingRate, in ms; 0 when empty, null when nothing is processed (it would never empty). */
  readonly timeToEmptyMs: number | null
  /** null before anything was processed (no rate per consumer to go by). */
  readonly recommendedConsumers: number | null
}

export function drainFigures(
  depth: number,
  arrivalRate: number,
  processingRate: number,
  consumers: number,
  targetTimeToEmptyMs: number,
): DrainFigures {
  const perConsumer = consumers > 0 ? processingRate / consumers : processingRate
  return {
    timeToEmptyMs: depth === 0 ? 0 : processingRate > 0 ? Math.round((depth / processingRate) * 1000) : null,
    recommendedConsumers:
      perConsumer > 0
        ? Math.max(depth > 0 ? 1 : 0, Math.ceil((arrivalRate + depth / (targetTimeToEmptyMs / 1000)) / perConsumer))
        : null,
  }
}
