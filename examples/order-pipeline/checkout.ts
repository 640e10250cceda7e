/**
 * The checkout service. For each order it charges the payment synchronously
 * (the customer waits for that answer, so it happens here and not on a
 * queue), then publishes `order.completed` and moves on: it never waits for
 * inventory or email, and does not know they exist.
 *
 * Reads lines from stdin, each a number of orders to place:
 *   echo 5 | node --import tsx examples/order-pipeline/checkout.ts sluice://127.0.0.1:7420
 * Exits when stdin ends.
 */
import { createInterface } from 'node:readline'
import { setTimeout as sleep } from 'node:timers/promises'
import type { Sluice } from '../../src/index.ts'
import { connect, describeError, dollars, ordersTopic, say, type Order } from './shared.ts'

const service = 'checkout'

const catalogue = [
  { sku: 'mug', priceCents: 1200 },
  { sku: 't-shirt', priceCents: 2200 },
  { sku: 'notebook', priceCents: 850 },
  { sku: 'poster', priceCents: 1500 },
] as const

/** Their keys land on partitions 0, 2 and 1 of 3, so the orders spread over the topic. */
const users = ['bob', 'carol', 'dave'] as const

/** The n-th order (from 1): the users take turns, so each user has several orders, all with the same key. */
function draftOrder(n: number): Omit<Order, 'chargeId'> {
  const product = catalogue[n % catalogue.length]!
  const quantity = 1 + (n % 3)
  const userId = users[(n - 1) % users.length]!
  return {
    orderId: `o-${n}`,
    userId,
    email: `${userId}@example.com`,
    items: [{ sku: product.sku, quantity, priceCents: product.priceCents }],
    totalCents: quantity * product.priceCents,
  }
}

/** Stands in for the payment provider's API: a few milliseconds, answered before the order completes. */
async function chargePayment(order: Omit<Order, 'chargeId'>): Promise<string> {
  await sleep(3 + (order.totalCents % 5))
  return `ch-${order.orderId}`
}

async function placeOrder(sluice: Sluice, n: number): Promise<void> {
  const draft = draftOrder(n)
  const order: Order = { ...draft, chargeId: await chargePayment(draft) }
  // The order id as the message id: consumers see it as msg.id, so an order published twice is recognisable.
  const receipt = await sluice.publish(ordersTopic, order, { key: order.userId, id: order.orderId })
  say(
    service,
    `charged ${dollars(order.totalCents)} for order ${order.orderId} (user ${order.userId}), published to partition ${receipt.partition} offset ${receipt.offset}${receipt.duplicate ? ' (a duplicate: stored once)' : ''}`,
  )
}

const sluice = await connect(service, 'closing')
let placed = 0
try {
  for await (const line of createInterface({ input: process.stdin })) {
    if (line.trim() === '') continue
    const count = Number(line)
    if (!Number.isSafeInteger(count) || count < 1) {
      say(service, `ignoring ${JSON.stringify(line)}: expected a number of orders to place`)
      continue
    }
    for (let i = 0; i < count; i++) await placeOrder(sluice, ++placed)
    say(service, `placed ${count} order${count === 1 ? '' : 's'}; ${placed} in all`)
  }
} catch (err) {
  // A real checkout would refund the charge or retry; here a failed publish ends the run.
  say(service, `could not publish order o-${placed}: ${describeError(err)}`)
  process.exitCode = 1
} finally {
  await sluice.close()
}
