/**
 * The email service: subscription `email` on `order.completed` sends the
 * order confirmation. While it is down, its messages wait in the queue; when
 * it comes back, it starts where its acknowledgements stopped.
 *
 *   node --import tsx examples/order-pipeline/email.ts sluice://127.0.0.1:7420
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { connect, dollars, ordersTopic, say, type Order } from './shared.ts'

const service = 'email'
const sluice = await connect(service)

await sluice.subscribe<Order>(ordersTopic, 'email', async (msg) => {
  const order = msg.data
  await sleep(10) // the mail provider
  say(
    service,
    `sent the confirmation for order ${order.orderId} to ${order.email} (${dollars(order.totalCents)}${msg.attempt > 1 ? `; attempt ${msg.attempt}` : ''})`,
  )
})
say(service, `subscribed to ${ordersTopic} as 'email' (at-least-once, one user's orders in order)`)
