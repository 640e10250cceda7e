import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FakeClock } from './clock.ts'
import { PayloadFormat } from './codec.ts'
import type { DriverConsumer } from './driver.ts'
import { eventually } from './conformance/helpers.ts'
import { Subscription } from './subscription.ts'
import type { ConsumerConfig, LeasedRecord, LeaseRef } from './types.ts'

/** A consumer whose leases, acks and lost leases the test hands out by hand. */
class ScriptedConsumer implements DriverConsumer {
  readonly leases: ((records: LeasedRecord[]) => void)[] = []
  /** The `max` of every lease call, in order. */
  readonly asked: number[] = []
  readonly acks: { refs: readonly LeaseRef[]; answer: (ok: boolean[]) => void }[] = []
  readonly extended: LeaseRef[] = []
  private lost: ((ref: LeaseRef) => void) | null = null

  lease(max: number, signal: AbortSignal): Promise<LeasedRecord[]> {
    this.asked.push(max)
    return new Promise((resolve) => {
      this.leases.push(resolve)
      signal.addEventListener('abort', () => resolve([]), { once: true })
    })
  }
  ack(refs: readonly LeaseRef[]): Promise<boolean[]> {
    return new Promise((answer) => this.acks.push({ refs, answer }))
  }
  nack(refs: readonly LeaseRef[]): Promise<boolean[]> {
    return Promise.resolve(refs.map(() => true))
  }
  commit(): Promise<never> {
    return Promise.reject(new Error('not used'))
  }
  extend(refs: readonly LeaseRef[]): Promise<boolean[]> {
    this.extended.push(...refs)
    return Promise.resolve(refs.map(() => true))
  }
  release(): Promise<void> {
    return Promise.resolve()
  }
  onLeaseLost(listener: (ref: LeaseRef) => void): void {
    this.lost = listener
  }
  loseLease(ref: LeaseRef): void {
    this.lost!(ref)
  }
  onClosed(): void {}
  close(): Promise<void> {
    return Promise.resolve()
  }
}

function delivery(offset: number, attempt: number): LeasedRecord {
  return {
    id: `m${offset}`,
    key: null,
    headers: {},
    payload: new TextEncoder().encode('"x"'),
    format: PayloadFormat.Json,
    deliverAt: 0,
    partition: 0,
    offset,
    timestamp: 0,
    attempt,
  }
}

test('a lease lost while its ack is on the way does not free the place of the redelivery that follows', async () => {
  const clock = new FakeClock()
  const consumer = new ScriptedConsumer()
  const attempts: number[] = []
  let releaseSecond!: () => void
  const secondHeld = new Promise<void>((resolve) => (releaseSecond = resolve))
  const errors: unknown[] = []
  const sub = new Subscription(
    consumer,
    async (m) => {
      attempts.push(m.attempt)
      if (m.attempt === 2) await secondHeld
    },
    {
      topic: 'orders',
      name: 'billing',
      config: { delivery: 'at-least-once', ackTimeoutMs: 30, maxLeaseMs: 60_000 } as ConsumerConfig,
      concurrency: 1,
      autoscale: null,
      prefetch: 0,
      codec: undefined,
      clock,
      onError: (err) => errors.push(err),
      stats: () => Promise.resolve(undefined),
      encodeOutputs: () => [],
    },
    () => undefined,
  )
  try {
    await eventually('the first lease call', () => consumer.leases.length === 1)
    consumer.leases.shift()!([delivery(0, 1)])
    // The handler returned; its ack is on the way when the lease is lost (expired, or the consumer cut off).
    await eventually('the first ack', () => consumer.acks.length === 1)
    consumer.loseLease({ partition: 0, offset: 0, attempt: 1 })
    // The same message comes again, and its handler runs while the refused ack of the first delivery comes back.
    await eventually('a second lease call', () => consumer.leases.length === 1)
    consumer.leases.shift()!([delivery(0, 2)])
    await eventually('the redelivery to run', () => attempts.length === 2)
    consumer.acks.shift()!.answer([false])
    await eventually('the refused ack to be reported', () => errors.length === 1)

    assert.equal(sub.inFlight, 1, 'the redelivery is still held')
    // Its lease is still kept alive by the heartbeat.
    clock.advance(10)
    await eventually('the heartbeat', () => consumer.extended.length > 0)
    assert.deepEqual(
      consumer.extended.map((r) => r.attempt),
      [2],
    )
  } finally {
    releaseSecond()
    await sub.close({ drain: false, timeoutMs: 0 })
  }
})

test('acks on their way free places for the next lease, but never more than concurrency + prefetch of them', async () => {
  const consumer = new ScriptedConsumer()
  const handled: number[] = []
  const sub = new Subscription(
    consumer,
    (m) => void handled.push(m.offset),
    {
      topic: 'orders',
      name: 'billing',
      config: { delivery: 'at-least-once', ackTimeoutMs: 30_000, maxLeaseMs: 60_000 } as ConsumerConfig,
      concurrency: 2,
      autoscale: null,
      prefetch: 2,
      codec: undefined,
      clock: new FakeClock(),
      onError: () => undefined,
      stats: () => Promise.resolve(undefined),
      encodeOutputs: () => [],
    },
    () => undefined,
  )
  let next = 0
  const hand = (): void => {
    const max = consumer.asked.at(-1)!
    consumer.leases.shift()!(Array.from({ length: max }, () => delivery(next++, 1)))
  }
  try {
    // Four places (2 + 2): the first four run, and their acks go out and are never answered.
    await eventually('the first lease call', () => consumer.leases.length === 1)
    assert.equal(consumer.asked[0], 4)
    hand()
    await eventually('four acks on their way', () => consumer.acks.flatMap((a) => a.refs).length === 4)
    // Those four do not hold the consumer back: it asks for four more at once.
    await eventually('a second lease call', () => consumer.leases.length === 1)
    assert.equal(consumer.asked[1], 4)
    hand()
    await eventually('eight handled', () => handled.length === 8)
    await eventually('eight acks on their way', () => consumer.acks.flatMap((a) => a.refs).length === 8)
    // Now unanswered acks hold it back: no third lease while they stay unanswered.
    await new Promise((resolve) => setTimeout(resolve, 50))
    assert.equal(consumer.leases.length, 0, `a third lease call (max ${consumer.asked[2]}) with 8 acks unanswered`)
    assert.equal(sub.inFlight, 8)
    // Answered acks free their places.
    const answered = consumer.acks.shift()!
    answered.answer(answered.refs.map(() => true))
    await eventually('a third lease call once acks are answered', () => consumer.leases.length === 1)
  } finally {
    await sub.close({ drain: false, timeoutMs: 0 })
  }
})
