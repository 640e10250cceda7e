import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { isDeepStrictEqual } from 'node:util'
import fc from 'fast-check'
import { FakeClock } from '../../src/core/clock.ts'
import { DeadLetterHeaders } from '../../src/core/dead-letters.ts'
import type { DriverConsumer } from '../../src/core/driver.ts'
import {
  DeliveryGuarantee,
  Ordering,
  StartAt,
  type ConsumerConfig,
  type LeasedRecord,
  type LeaseRef,
  type StoredRecord,
} from '../../src/core/types.ts'
import { Engine } from '../../src/engine/engine.ts'
import { runSeed } from '../helpers/random.ts'
import { appendRecord } from '../helpers/records.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { reportFigures, scale } from './report.ts'

/**
 * The leases of the embedded engine against a model. fast-check generates
 * sequences of publish, lease, ack, nack, extend, clock advances and
 * restarts; each runs against a fresh engine on a fake clock, and every
 * answer is compared with the model's:
 *
 * - ack, nack and extend answer exactly as the model says (a lost, stale or
 *   pre-restart lease answers false and changes nothing);
 * - a delivery is of a message the model has ready (never acknowledged, dead,
 *   leased, or inside its backoff), with the attempt number the model expects;
 * - after the run, peek holds exactly the messages neither acknowledged nor
 *   dead, and the dead-letter topic exactly the dead ones, once each, after
 *   exactly maxAttempts deliveries.
 *
 * The model is lenient only where the engine is free: which ready messages a
 * lease returns, and how many (at least one, at most `max`).
 *
 * Across a restart (consumer closed, engine closed and opened again on the
 * same directory): leases held fail at close (backoff, or dead letter after
 * maxAttempts), and close settles that dead lettering; acknowledgements and
 * delivery counts survive (maxAttempts counts deliveries in total, and
 * SubscriptionState keeps them across a restart); backoffs do not (they live
 * in memory), so every message neither acknowledged nor dead is offered at
 * once.
 */

const runs = scale('SLUICE_LEASE_RUNS', 200)
const topic = 'jobs'
const deadLetterTopic = 'jobs.dlq'
const subscription = 'workers'
const partitions = 2
const ackTimeoutMs = 1000
const maxLeaseMs = 3000
const maxAttempts = 3
/** The redelivery delay: no growth and no jitter, so the model knows it exactly. */
const backoffMs = 500
const config: ConsumerConfig = {
  delivery: DeliveryGuarantee.AtLeastOnce,
  ordering: Ordering.None,
  startAt: StartAt.Earliest,
  ackTimeoutMs,
  maxLeaseMs,
  maxAttempts,
  backoff: { initialMs: backoffMs, multiplier: 1, maxMs: backoffMs, jitter: 0 },
  deadLetter: deadLetterTopic,
}
/** Real time a lease may take when the model says a message is ready (the engine reads the log into its window asynchronously). */
const readyWithinMs = 5000
/** Real time the engine has to finish asynchronous work (dead letters) before the final checks fail. */
const settleWithinMs = 5000

type Place =
  | { readonly is: 'ready'; readonly at: number }
  | {
      readonly is: 'leased'
      readonly attempt: number
      /** The consumer holding it: one per engine opening. */
      readonly generation: number
      readonly grantedAt: number
      deadline: number
    }
  | { readonly is: 'acked' }
  | { readonly is: 'dead' }

interface Tracked {
  readonly id: string
  readonly partition: number
  readonly offset: number
  /** Deliveries so far, as the engine counts them (the attempt number of the last one). */
  attempts: number
  /** Deliveries this test has seen. */
  deliveries: number
  place: Place
}

/** A lease ref as the test holds it, with the consumer it was granted to. */
interface HeldRef extends LeaseRef {
  readonly generation: number
}

/** Totals over every run; `commands` counts those of the final drain too. */
const figures = {
  commands: 0,
  leaseCalls: 0,
  deliveries: 0,
  acks: 0,
  staleAcksRefused: 0,
  preRestartAcksRefused: 0,
  nacks: 0,
  staleNacksRefused: 0,
  extends: 0,
  extendsRefused: 0,
  expiries: 0,
  redeliveries: 0,
  deadLettered: 0,
  restarts: 0,
}

function keyOf(ref: { partition: number; offset: number }): string {
  return `${ref.partition}/${ref.offset}`
}

class LeaseModel {
  now: number
  generation = 0
  published = 0
  readonly messages = new Map<string, Tracked>()
  readonly held: HeldRef[] = []

  constructor(now: number) {
    this.now = now
  }

  /** The held ref `pick` names, counting back from the newest (small picks are the likeliest to be live). */
  ref(pick: number): HeldRef {
    return this.held[this.held.length - 1 - (pick % this.held.length)]!
  }

  /** The message a ref leases and its lease, if that lease is live now. */
  live(ref: HeldRef): { m: Tracked; lease: Extract<Place, { is: 'leased' }> } | null {
    const m = this.messages.get(keyOf(ref))
    if (m === undefined || m.place.is !== 'leased') return null
    const lease = m.place
    if (lease.attempt !== ref.attempt || lease.generation !== ref.generation || lease.deadline <= this.now) return null
    return { m, lease }
  }

  ready(): Tracked[] {
    return [...this.messages.values()].filter((m) => m.place.is === 'ready' && m.place.at <= this.now)
  }

  /** A delivery failed at `at`: offered again after the delay (the backoff when null), or dead after maxAttempts. */
  fail(m: Tracked, at: number, delayMs: number | null): void {
    if (m.attempts >= maxAttempts) {
      m.place = { is: 'dead' }
      figures.deadLettered++
    } else {
      m.place = { is: 'ready', at: at + (delayMs ?? backoffMs) }
      figures.redeliveries++
    }
  }

  /** Time passes: each lease whose deadline comes fails at its deadline. */
  advance(ms: number): void {
    const target = this.now + ms
    for (const m of this.messages.values()) {
      if (m.place.is === 'leased' && m.place.deadline <= target) {
        figures.expiries++
        this.fail(m, m.place.deadline, null)
      }
    }
    this.now = target
  }

  /** The next moment something changes by itself (a deadline or the end of a backoff); null when nothing will. */
  nextEvent(): number | null {
    let next: number | null = null
    for (const m of this.messages.values()) {
      const at = m.place.is === 'leased' ? m.place.deadline : m.place.is === 'ready' ? m.place.at : null
      if (at !== null && at > this.now && (next === null || at < next)) next = at
    }
    return next
  }

  /** Counts of each place, for failure messages. */
  summary(): string {
    const counts = new Map<string, number>()
    for (const m of this.messages.values()) counts.set(m.place.is, (counts.get(m.place.is) ?? 0) + 1)
    return `t=${this.now} gen=${this.generation} ${[...counts].map(([k, v]) => `${k}:${v}`).join(' ')}`
  }
}

interface Real {
  readonly dir: string
  readonly clock: FakeClock
  engine: Engine
  consumer: DriverConsumer
}

type LeaseCommand = fc.AsyncCommand<LeaseModel, Real>

function describe(m: Tracked): string {
  const p = m.place
  const where =
    p.is === 'ready'
      ? `ready at ${p.at}`
      : p.is === 'leased'
        ? `leased (attempt ${p.attempt}, consumer ${p.generation}, deadline ${p.deadline})`
        : p.is
  return `message ${m.id} (${keyOf(m)}, ${m.attempts} deliveries, ${where})`
}

class Publish implements LeaseCommand {
  constructor(readonly count: number) {}
  check = (): boolean => true
  async run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    const ids = Array.from({ length: this.count }, () => `m${model.published++}`)
    const receipts = await real.engine.append(
      topic,
      ids.map((id) => appendRecord(id)),
    )
    receipts.forEach((receipt, i) => {
      assert.equal(receipt.duplicate, false)
      assert.equal(model.messages.has(keyOf(receipt)), false, `offset ${keyOf(receipt)} given twice`)
      model.messages.set(keyOf(receipt), {
        id: ids[i]!,
        partition: receipt.partition,
        offset: receipt.offset,
        attempts: 0,
        deliveries: 0,
        place: { is: 'ready', at: model.now },
      })
    })
  }
  toString = (): string => `Publish(${this.count})`
}

class Lease implements LeaseCommand {
  constructor(readonly max: number) {}
  check = (): boolean => true
  async run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    figures.leaseCalls++
    const ready = model.ready()
    // Nothing ready: what is ready right now (nothing) must come back at once. Something ready: it may
    // still be on its way into the engine's window, so wait for it, up to a generous real-time limit.
    const controller = new AbortController()
    if (ready.length === 0) controller.abort()
    const timer = setTimeout(() => controller.abort(), readyWithinMs)
    let got: LeasedRecord[]
    try {
      got = await real.consumer.lease(this.max, controller.signal)
    } finally {
      clearTimeout(timer)
    }
    if (ready.length > 0) {
      assert.ok(
        got.length > 0,
        `the model has ${ready.length} messages ready (${ready.map(describe).join('; ')}) but lease(${this.max}) returned none within ${readyWithinMs} ms [${model.summary()}]`,
      )
    }
    assert.ok(got.length <= this.max, `lease(${this.max}) returned ${got.length} messages`)
    const seen = new Set<string>()
    for (const record of got) {
      const key = keyOf(record)
      assert.ok(!seen.has(key), `lease returned ${key} twice in one call`)
      seen.add(key)
      const m = model.messages.get(key)
      assert.ok(m !== undefined, `lease returned ${key}, which was never published`)
      assert.equal(record.id, m.id, `the record at ${key}`)
      assert.ok(
        m.place.is === 'ready' && m.place.at <= model.now,
        `lease delivered ${describe(m)} at t=${model.now}, which is not ready [${model.summary()}]`,
      )
      assert.equal(record.attempt, m.attempts + 1, `attempt number of the delivery of ${describe(m)}`)
      m.attempts++
      m.deliveries++
      figures.deliveries++
      m.place = {
        is: 'leased',
        attempt: record.attempt,
        generation: model.generation,
        grantedAt: model.now,
        deadline: model.now + ackTimeoutMs,
      }
      model.held.push({
        partition: record.partition,
        offset: record.offset,
        attempt: record.attempt,
        generation: model.generation,
      })
    }
  }
  toString = (): string => `Lease(${this.max})`
}

function plainRef(ref: HeldRef): LeaseRef {
  return { partition: ref.partition, offset: ref.offset, attempt: ref.attempt }
}

function refText(model: LeaseModel, ref: HeldRef): string {
  const m = model.messages.get(keyOf(ref))!
  return `ref {${keyOf(ref)}, attempt ${ref.attempt}, consumer ${ref.generation}} of ${describe(m)} at t=${model.now}, consumer ${model.generation}`
}

class Ack implements LeaseCommand {
  constructor(readonly pick: number) {}
  check = (model: Readonly<LeaseModel>): boolean => model.held.length > 0
  async run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    const ref = model.ref(this.pick)
    const live = model.live(ref)
    const text = refText(model, ref)
    const [acked] = await real.consumer.ack([plainRef(ref)])
    assert.equal(acked, live !== null, `ack of ${text}`)
    if (live !== null) {
      live.m.place = { is: 'acked' }
      figures.acks++
    } else {
      figures.staleAcksRefused++
      if (ref.generation !== model.generation) figures.preRestartAcksRefused++
    }
  }
  toString = (): string => `Ack(#${this.pick})`
}

class Nack implements LeaseCommand {
  constructor(
    readonly pick: number,
    readonly delayMs: number | null,
  ) {}
  check = (model: Readonly<LeaseModel>): boolean => model.held.length > 0
  async run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    const ref = model.ref(this.pick)
    const live = model.live(ref)
    const text = refText(model, ref)
    const [nacked] = await real.consumer.nack([plainRef(ref)], this.delayMs, 'nacked by the model test')
    assert.equal(nacked, live !== null, `nack of ${text}`)
    if (live !== null) {
      figures.nacks++
      model.fail(live.m, model.now, this.delayMs)
    } else {
      figures.staleNacksRefused++
    }
  }
  toString = (): string => `Nack(#${this.pick}, ${this.delayMs})`
}

class Extend implements LeaseCommand {
  constructor(
    readonly pick: number,
    readonly ms: number,
  ) {}
  check = (model: Readonly<LeaseModel>): boolean => model.held.length > 0
  async run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    const ref = model.ref(this.pick)
    const live = model.live(ref)
    const text = refText(model, ref)
    // A deadline moves to `ms` from now (earlier too), never past maxLeaseMs from the grant; one not in the future is refused.
    const deadline = live === null ? -Infinity : Math.min(model.now + this.ms, live.lease.grantedAt + maxLeaseMs)
    const expected = deadline > model.now
    const [extended] = await real.consumer.extend([plainRef(ref)], this.ms)
    assert.equal(extended, expected, `extend by ${this.ms} ms of ${text}`)
    if (expected) {
      live!.lease.deadline = deadline
      figures.extends++
    } else {
      figures.extendsRefused++
    }
  }
  toString = (): string => `Extend(#${this.pick}, ${this.ms})`
}

class Advance implements LeaseCommand {
  constructor(readonly ms: number) {}
  check = (): boolean => true
  run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    model.advance(this.ms)
    real.clock.advance(this.ms)
    return Promise.resolve()
  }
  toString = (): string => `Advance(${this.ms})`
}

/** Advances to just before, exactly to, or just past the next deadline or end of a backoff. */
class AdvanceToNext implements LeaseCommand {
  constructor(readonly nudge: -1 | 0 | 1) {}
  check = (): boolean => true
  run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    const next = model.nextEvent()
    const ms = next === null ? 1 : Math.max(0, next - model.now + this.nudge)
    model.advance(ms)
    real.clock.advance(ms)
    return Promise.resolve()
  }
  toString = (): string => `AdvanceToNext(${this.nudge})`
}

class Restart implements LeaseCommand {
  check = (): boolean => true
  async run(model: LeaseModel, real: Real): Promise<void> {
    figures.commands++
    figures.restarts++
    await restart(real)
    // Leases held fail when their consumer closes; backoffs are not kept across the restart.
    for (const m of model.messages.values()) if (m.place.is === 'leased') model.fail(m, model.now, null)
    for (const m of model.messages.values()) if (m.place.is === 'ready') m.place = { is: 'ready', at: model.now }
    model.generation++
  }
  toString = (): string => 'Restart'
}

async function restart(real: Real): Promise<void> {
  await real.consumer.close()
  await real.engine.close()
  real.engine = await Engine.open({ dir: real.dir, clock: real.clock })
  real.consumer = await real.engine.openConsumer(topic, subscription, config)
}

/** Commands, each arbitrary repeated by its weight: leases and failures often enough for messages to run out of attempts. */
const commands = fc.commands(
  (
    [
      [1, fc.integer({ min: 1, max: 4 }).map((n) => new Publish(n))],
      [3, fc.integer({ min: 1, max: 4 }).map((n) => new Lease(n))],
      [2, fc.nat({ max: 7 }).map((pick) => new Ack(pick))],
      [
        2,
        fc
          .tuple(fc.nat({ max: 7 }), fc.constantFrom<number | null>(null, 0, 200, backoffMs, 2000))
          .map(([pick, delayMs]) => new Nack(pick, delayMs)),
      ],
      [
        1,
        fc
          .tuple(fc.nat({ max: 7 }), fc.constantFrom(0, 100, 600, ackTimeoutMs, 2500, 5000))
          .map(([pick, ms]) => new Extend(pick, ms)),
      ],
      [
        2,
        fc
          .oneof(
            fc.integer({ min: 1, max: 400 }),
            fc.constantFrom(backoffMs - 1, backoffMs, ackTimeoutMs - 1, ackTimeoutMs, ackTimeoutMs + 1, maxLeaseMs),
          )
          .map((ms) => new Advance(ms)),
      ],
      [2, fc.constantFrom(-1 as const, 0 as const, 1 as const).map((nudge) => new AdvanceToNext(nudge))],
      [1, fc.constant(new Restart())],
    ] as const
  ).flatMap(([weight, arbitrary]) => Array<fc.Arbitrary<LeaseCommand>>(weight).fill(arbitrary)),
  { maxCommands: 60, size: 'large' },
)

async function readAll(engine: Engine, name: string): Promise<StoredRecord[]> {
  const out: StoredRecord[] = []
  for (let p = 0; p < partitions; p++) out.push(...(await engine.read(name, p, 0, 10_000)))
  return out
}

/** Waits until `get` answers `expected` (asynchronous work may still land), then asserts it, for a readable diff. */
async function settlesTo<T>(what: string, get: () => Promise<T>, expected: T): Promise<void> {
  let last = await get()
  await waitFor(what, async () => isDeepStrictEqual((last = await get()), expected), settleWithinMs).catch(
    () => undefined,
  )
  assert.deepEqual(last, expected, what)
}

/** Peek holds exactly the messages neither acknowledged nor dead. */
async function checkPeek(model: LeaseModel, real: Real): Promise<void> {
  const expected = [...model.messages.values()]
    .filter((m) => m.place.is !== 'acked' && m.place.is !== 'dead')
    .map((m) => `${keyOf(m)} ${m.id}`)
    .sort()
  await settlesTo(
    `peek: the messages neither acknowledged nor dead [${model.summary()}]`,
    async () => (await real.engine.peek(topic, subscription, 10_000)).map((r) => `${keyOf(r)} ${r.id}`).sort(),
    expected,
  )
}

/** The dead-letter topic holds each dead message once, after exactly maxAttempts deliveries, and nothing else. */
async function checkDeadLetters(model: LeaseModel, real: Real): Promise<void> {
  const dead = [...model.messages.values()].filter((m) => m.place.is === 'dead')
  for (const m of dead) assert.equal(m.deliveries, maxAttempts, `deliveries of dead ${describe(m)}`)
  const expected = dead.map((m) => `${m.id} from ${keyOf(m)} after ${maxAttempts} attempts`).sort()
  await settlesTo(
    `dead-letter topic: each dead message once [${model.summary()}]`,
    async () =>
      (await readAll(real.engine, deadLetterTopic))
        .map((r) => {
          const h = r.headers
          return `${r.id} from ${h[DeadLetterHeaders.OriginalPartition]}/${h[DeadLetterHeaders.OriginalOffset]} after ${h[DeadLetterHeaders.Attempts]} attempts`
        })
        .sort(),
    expected,
  )
}

/**
 * After the commands: peek and the dead-letter topic match the model; then
 * every lease runs out, whatever is left is leased (never an acknowledged or
 * dead message) and acknowledged, and after one more restart nothing is left.
 */
async function finish(model: LeaseModel, real: Real): Promise<void> {
  await checkPeek(model, real)
  await checkDeadLetters(model, real)
  await new Advance(maxLeaseMs + backoffMs).run(model, real)
  for (let round = 0; model.ready().length > 0; round++) {
    assert.ok(round < 1000, 'draining does not end')
    await new Lease(16).run(model, real)
    for (let pick = 0; pick < model.held.length; pick++) {
      if (model.live(model.ref(pick)) !== null) await new Ack(pick).run(model, real)
    }
  }
  await new Lease(16).run(model, real)
  await checkDeadLetters(model, real)
  await checkPeek(model, real)
  await new Restart().run(model, real)
  assert.deepEqual(await real.engine.peek(topic, subscription, 10_000), [], 'peek after the final restart')
  await checkDeadLetters(model, real)
}

/** A fresh engine in `dir` with the topic, its dead-letter topic and one consumer. */
async function openRun(dir: string): Promise<Real> {
  const clock = new FakeClock()
  const engine = await Engine.open({ dir, clock })
  try {
    await engine.createTopic(topic, { partitions, durability: 'fsync' })
    await engine.createTopic(deadLetterTopic, { partitions, durability: 'fsync' })
    return { dir, clock, engine, consumer: await engine.openConsumer(topic, subscription, config) }
  } catch (err) {
    await engine.close()
    throw err
  }
}

test(`leases, acks, nacks, extends, expiries and restarts match the model over ${runs} runs`, async (t) => {
  const seed = runSeed()
  t.diagnostic(`seed ${seed} (replay with SLUICE_SEED=${seed})`)
  const base = await tempDir(t, 'sluice-lease-model-')
  const started = Date.now()
  await fc.assert(
    fc.asyncProperty(commands, async (cmds) => {
      const dir = await mkdtemp(join(base, 'run-'))
      const real = await openRun(dir)
      try {
        const model = new LeaseModel(real.clock.now())
        await fc.asyncModelRun(() => ({ model, real }), cmds)
        await finish(model, real)
      } finally {
        await real.engine.close().catch(() => undefined)
        await rm(dir, { recursive: true, force: true })
      }
    }),
    { numRuns: runs, seed, includeErrorInReport: true },
  )
  const report = { runs, seed, durationMs: Date.now() - started, ...figures }
  t.diagnostic(JSON.stringify(report))
  await reportFigures('lease-model', report)
})
