import { DeliveryGuarantee, Ordering, StartAt, type ConsumerConfig } from '../../src/core/types.ts'
import { encodeFrame, FrameKind } from '../../src/protocol/frame.ts'
import { Op } from '../../src/protocol/ops.ts'

/**
 * What a hand-made client sends to open a consumer over the broker protocol,
 * for tests and torture runs of clients that misbehave (never read, stall):
 * at-least-once, no ordering, from the earliest message, leases that do not
 * expire during a test.
 */
export const rawConsumerConfig: ConsumerConfig = {
  delivery: DeliveryGuarantee.AtLeastOnce,
  ordering: Ordering.None,
  startAt: StartAt.Earliest,
  ackTimeoutMs: 600_000,
  maxLeaseMs: 600_000,
  maxAttempts: 5,
  backoff: { initialMs: 0, multiplier: 2, maxMs: 0, jitter: 0 },
  deadLetter: null,
}

/** An OPEN_CONSUMER request frame (request id 1) for consumer 1 with `credit`. */
export function openConsumerFrame(topic: string, subscription: string, credit: number): Buffer {
  return encodeFrame(FrameKind.Request, 1, [
    Op.OpenConsumer,
    { consumer: 1, topic, subscription, config: rawConsumerConfig, credit },
  ])
}
