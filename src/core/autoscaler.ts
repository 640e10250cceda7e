/**
 * Handler concurrency from measurements: enough handlers to keep up with
 * arrivals and empty the backlog within the target time, at the measured
 * speed of one handler. Grows at once (up to doubling per step), shrinks
 * only after several evaluations agree, only past a dead band, and never so
 * far that the remaining handlers would be more than 80% busy, so it does
 * not flap.
 */
export interface AutoscaleConfig {
  readonly min: number
  readonly max: number
  /** Empty the backlog within this long. Default 60000. */
  readonly targetTimeToEmptyMs: number
}

/** What one evaluation saw. */
export interface AutoscaleInputs {
  /** Messages not yet acknowledged. */
  readonly depth: number
  /** Messages arriving per second. */
  readonly arrivalRate: number
  /** Messages handled per second by one handler (1000 / mean handler ms); null before any was handled. */
  readonly perHandlerRate: number | null
  /** Handlers busy on average over the interval, 0 to current. */
  readonly busy: number
}

export interface AutoscaleDecision {
  readonly from: number
  readonly to: number
  /** The concurrency the inputs ask for, before limits and damping. */
  readonly wanted: number
  readonly inputs: AutoscaleInputs
  readonly reason: string
}

/** How many evaluations in a row must ask for less before concurrency shrinks. */
const shrinkAfter = 3
/** A shrink happens only if the wanted concurrency is below this share of the current one (or nothing waits). */
const deadBand = 0.75
/** How busy the handlers left after a shrink may be, on what was measured. */
const maxUtilisation = 0.8

export class Autoscaler {
  private lowStreak = 0
  current: number

  constructor(readonly config: AutoscaleConfig) {
    this.current = config.min
  }

  evaluate(inputs: AutoscaleInputs): AutoscaleDecision {
    const { min, max, targetTimeToEmptyMs } = this.config
    const from = this.current
    let wanted: number
    let reason: string
    if (inputs.perHandlerRate === null || inputs.perHandlerRate <= 0) {
      // Nothing measured yet: grow while there is a backlog and every handler is busy; idle needs only the busy ones.
      wanted = inputs.depth > 0 ? (inputs.busy >= from - 0.5 ? from * 2 : from) : Math.ceil(inputs.busy)
      reason = inputs.depth > 0 ? 'no handler speed measured yet' : 'nothing waiting, no handler speed measured'
    } else {
      const needed = inputs.arrivalRate + inputs.depth / (targetTimeToEmptyMs / 1000)
      wanted = Math.ceil(needed / inputs.perHandlerRate)
      reason = `${needed.toFixed(1)} msgs/s needed (arrivals ${inputs.arrivalRate.toFixed(1)}/s + depth ${inputs.depth} within ${targetTimeToEmptyMs} ms) at ${inputs.perHandlerRate.toFixed(1)} msgs/s per handler`
    }
    wanted = Math.max(min, Math.min(max, wanted))
    if (wanted > from) {
      this.lowStreak = 0
      this.current = Math.min(wanted, from * 2)
      return { from, to: this.current, wanted, inputs, reason }
    }
    // Shrink by half at most (a lull may be short), and never below what keeps the handlers now busy at
    // most `maxUtilisation` busy: else the backlog that grows back asks for the handlers just removed.
    const shrinkTo = Math.max(wanted, Math.ceil(from / 2), Math.ceil(inputs.busy / maxUtilisation), min)
    if (shrinkTo < from && (wanted < from * deadBand || inputs.depth === 0)) {
      this.lowStreak++
      if (this.lowStreak >= shrinkAfter) {
        this.lowStreak = 0
        this.current = shrinkTo
      }
    } else {
      this.lowStreak = 0
    }
    return { from, to: this.current, wanted, inputs, reason }
  }
}
