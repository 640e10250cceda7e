import { createHistogram, performance, type RecordableHistogram } from 'node:perf_hooks'

/** Latency in milliseconds from a perf_hooks histogram (recorded in nanoseconds). */
export interface Latency {
  readonly p50Ms: number
  readonly p99Ms: number
  readonly p999Ms: number
  readonly maxMs: number
}

export function newHistogram(): RecordableHistogram {
  return createHistogram({ lowest: 1, highest: 60e9, figures: 3 })
}

export function latencyOf(h: RecordableHistogram): Latency {
  const ms = (ns: number): number => Math.round(ns / 1e3) / 1e3
  return {
    p50Ms: ms(h.percentile(50)),
    p99Ms: ms(h.percentile(99)),
    p999Ms: ms(h.percentile(99.9)),
    maxMs: ms(h.max),
  }
}

/** Nanoseconds since some start, for latency records. */
export function nowNs(): number {
  return Math.round(performance.now() * 1e6)
}

/** How long each scenario runs: BENCH_SECONDS (default 3). */
export function scenarioSeconds(): number {
  return Number(process.env['BENCH_SECONDS'] ?? 3)
}
