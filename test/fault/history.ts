import { mkdir, writeFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import type { TestContext } from 'node:test'

/**
 * A Jepsen-style history of one fault run. Producers publish unique values
 * `(producer, counter)`; the run records each value's attempt, its
 * acknowledgement (the receipt: where the queue promised it is stored) and
 * every time it was read back. `check` turns that into the anomalies a queue
 * must never have, so every fault workload judges itself the same way.
 *
 * Counters of one producer must be published one after another (the next
 * attempt only after the last one's outcome): that is what makes "counter
 * order" the order the queue owes the values of one key.
 */
export interface Position {
  readonly partition: number
  readonly offset: number
}

export interface FaultReport {
  readonly seed: number
  readonly attempted: number
  readonly acknowledged: number
  /** Distinct values read. */
  readonly read: number
  /** Reads in all, repeats included. */
  readonly deliveries: number
  /** Acknowledged, never read: the one anomaly a durable queue must never have. */
  readonly lost: number
  /** Read, never attempted. */
  readonly unexpected: number
  /** Read though never acknowledged (stored before the crash took the answer): allowed. */
  readonly recovered: number
  /** Values stored at more than one position. */
  readonly storedTwice: number
  /** Reads beyond a value's first. */
  readonly duplicates: number
  readonly duplicateRate: number
  /** Values of one producer and key stored out of counter order (or in two partitions). */
  readonly orderViolations: number
  /** Offsets missing between the first and last read of a partition (when the whole log was read). */
  readonly offsetGaps: number
  /** Read at another position than the acknowledgement said. */
  readonly misplaced: number
  /** A few examples of each anomaly, for the failure message. */
  readonly examples: Record<string, string[]>
}

interface ValueRecord {
  key: string | undefined
  attempted: boolean
  ack: Position | null
  positions: Position[]
  reads: number
}

export class History {
  private readonly values = new Map<string, ValueRecord>()
  private readonly stray: { id: string; at: Position }[] = []

  constructor(readonly seed: number) {}

  static id(producer: string, counter: number): string {
    return `${producer}:${counter}`
  }

  attempt(producer: string, counter: number, key?: string): void {
    this.record(History.id(producer, counter), key).attempted = true
  }

  ack(producer: string, counter: number, at: Position): void {
    this.record(History.id(producer, counter)).ack = at
  }

  /** A value read back (from the log, or delivered to a handler). */
  read(id: string, at: Position): void {
    const value = this.values.get(id)
    if (value === undefined) {
      this.stray.push({ id, at })
      return
    }
    value.reads++
    if (!value.positions.some((p) => p.partition === at.partition && p.offset === at.offset)) value.positions.push(at)
  }

  /**
   * Takes back the acknowledgement of a value never read, for losses the
   * guarantee allows (e.g. `interval` durability); true if there was one.
   */
  forget(id: string): boolean {
    const v = this.values.get(id)
    if (v === undefined || v.ack === null || v.reads > 0) return false
    v.ack = null
    return true
  }

  /**
   * `wholeLog`: the reads covered every partition from its start, so a
   * missing offset is a gap (not just something nobody read).
   */
  check(options: { wholeLog?: boolean } = {}): FaultReport {
    const examples: Record<string, string[]> = {}
    const note = (anomaly: string, text: string): void => {
      const list = (examples[anomaly] ??= [])
      if (list.length < 5) list.push(text)
    }
    let attempted = 0
    let acknowledged = 0
    let read = 0
    let deliveries = 0
    let lost = 0
    let recovered = 0
    let storedTwice = 0
    let duplicates = 0
    let misplaced = 0
    for (const [id, v] of this.values) {
      if (v.attempted) attempted++
      if (v.ack !== null) acknowledged++
      deliveries += v.reads
      if (v.reads > 0) {
        read++
        duplicates += v.reads - 1
      }
      if (v.ack !== null && v.reads === 0) {
        lost++
        note('lost', `${id} acknowledged at ${show(v.ack)}, never read`)
      }
      if (v.ack === null && v.reads > 0 && v.attempted) recovered++
      if (v.reads > 0 && !v.attempted) note('unexpected', `${id} read at ${show(v.positions[0]!)}, never attempted`)
      if (v.positions.length > 1) {
        storedTwice++
        note('storedTwice', `${id} at ${v.positions.map(show).join(' and ')}`)
      }
      if (v.ack !== null && v.positions.length > 0 && !v.positions.some((p) => same(p, v.ack!))) {
        misplaced++
        note('misplaced', `${id} acknowledged at ${show(v.ack)}, read at ${show(v.positions[0]!)}`)
      }
    }
    const unexpectedValues = [...this.values.values()].filter((v) => v.reads > 0 && !v.attempted).length
    for (const s of this.stray) note('unexpected', `${s.id} read at ${show(s.at)}, never attempted`)
    return {
      seed: this.seed,
      attempted,
      acknowledged,
      read,
      deliveries,
      lost,
      unexpected: unexpectedValues + new Set(this.stray.map((s) => s.id)).size,
      recovered,
      storedTwice,
      duplicates,
      duplicateRate: read === 0 ? 0 : duplicates / read,
      orderViolations: this.orderViolations(note),
      offsetGaps: options.wholeLog === true ? this.offsetGaps(note) : 0,
      misplaced,
      examples,
    }
  }

  /** Writes the history where a failed run can be replayed from, and returns the path. */
  async save(name: string): Promise<string> {
    const dir = resolve(process.env['SLUICE_FAULT_HISTORY_DIR'] ?? '.torture/failures')
    await mkdir(dir, { recursive: true })
    const path = join(dir, `${name}-seed-${this.seed}.json`)
    await writeFile(path, JSON.stringify({ seed: this.seed, values: [...this.values], stray: this.stray }))
    return path
  }

  private record(id: string, key?: string): ValueRecord {
    let v = this.values.get(id)
    if (v === undefined) {
      v = { key, attempted: false, ack: null, positions: [], reads: 0 }
      this.values.set(id, v)
    } else if (key !== undefined) v.key = key
    return v
  }

  private orderViolations(note: (anomaly: string, text: string) => void): number {
    // Per producer and key, the stored positions in counter order must only go forward, in one partition.
    const chains = new Map<string, { counter: number; at: Position }[]>()
    for (const [id, v] of this.values) {
      if (v.key === undefined || v.positions.length === 0) continue
      const cut = id.lastIndexOf(':')
      const chainKey = `${id.slice(0, cut)}/${v.key}`
      let chain = chains.get(chainKey)
      if (chain === undefined) chains.set(chainKey, (chain = []))
      chain.push({ counter: Number(id.slice(cut + 1)), at: v.positions[0]! })
    }
    let violations = 0
    for (const [chainKey, chain] of chains) {
      chain.sort((a, b) => a.counter - b.counter)
      for (let i = 1; i < chain.length; i++) {
        const before = chain[i - 1]!
        const after = chain[i]!
        if (after.at.partition !== before.at.partition || after.at.offset <= before.at.offset) {
          violations++
          note(
            'orderViolations',
            `${chainKey}: counter ${before.counter} at ${show(before.at)}, counter ${after.counter} at ${show(after.at)}`,
          )
        }
      }
    }
    return violations
  }

  private offsetGaps(note: (anomaly: string, text: string) => void): number {
    const byPartition = new Map<number, Set<number>>()
    for (const v of this.values.values())
      for (const p of v.positions) {
        let offsets = byPartition.get(p.partition)
        if (offsets === undefined) byPartition.set(p.partition, (offsets = new Set()))
        offsets.add(p.offset)
      }
    let gaps = 0
    for (const [partition, offsets] of byPartition) {
      const sorted = [...offsets].sort((a, b) => a - b)
      for (let i = 1; i < sorted.length; i++) {
        if (sorted[i]! !== sorted[i - 1]! + 1) {
          gaps += sorted[i]! - sorted[i - 1]! - 1
          note('offsetGaps', `partition ${partition}: offsets ${sorted[i - 1]! + 1}..${sorted[i]! - 1} missing`)
        }
      }
    }
    return gaps
  }
}

/** The anomalies that fail a run. Duplicate deliveries are allowed (at-least-once); storing a value twice is not. */
export function failures(report: FaultReport): string[] {
  const out: string[] = []
  for (const anomaly of ['lost', 'unexpected', 'storedTwice', 'orderViolations', 'offsetGaps', 'misplaced'] as const) {
    if (report[anomaly] > 0) out.push(`${anomaly}: ${report[anomaly]} (${(report.examples[anomaly] ?? []).join('; ')})`)
  }
  return out
}

/**
 * Checks the history, tells the test's diagnostics, and fails the test on any
 * anomaly after saving the history for replay.
 */
export async function judge(
  t: TestContext,
  history: History,
  name: string,
  options: { wholeLog?: boolean } = {},
): Promise<FaultReport> {
  const report = history.check(options)
  t.diagnostic(summary(report))
  const found = failures(report)
  if (found.length > 0) {
    const path = await history.save(name)
    throw new Error(`${name}: ${found.join('\n')}\nhistory kept in ${path} (replay with SLUICE_SEED=${report.seed})`)
  }
  return report
}

/** One line for a test's diagnostics. */
export function summary(report: FaultReport): string {
  return (
    `seed ${report.seed}: ${report.attempted} attempted, ${report.acknowledged} acknowledged, ${report.read} read ` +
    `(${report.deliveries} deliveries, ${report.duplicates} duplicates = ${(100 * report.duplicateRate).toFixed(2)}%), ` +
    `${report.recovered} recovered; lost ${report.lost}, unexpected ${report.unexpected}, stored twice ${report.storedTwice}, ` +
    `order violations ${report.orderViolations}, offset gaps ${report.offsetGaps}, misplaced ${report.misplaced}`
  )
}

function same(a: Position, b: Position): boolean {
  return a.partition === b.partition && a.offset === b.offset
}

function show(p: Position): string {
  return `${p.partition}/${p.offset}`
}
