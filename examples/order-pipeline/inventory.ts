/**
 * The inventory service: subscription `inventory` on `order.completed`
 * reserves the stock of every order. At-least-once: the message is
 * acknowledged when the handler returns; if the service dies first, the
 * order comes again.
 *
 *   node --import tsx examples/order-pipeline/inventory.ts sluice://127.0.0.1:7420
 */
import { setTimeout as sleep } from 'node:timers/promises'
import { connect, ordersTopic, say, type Order } from './shared.ts'

const service = 'inventory'
const sluice = await connect(service)

await sluice.subscribe<Order>(
  ordersTopic,
  'inventory',
  async (msg) => {
    const order = msg.data
    await sleep(5) // the stock database
    const items = order.items.map((item) => `${item.quantity} x ${item.sku}`).join(', ')
    say(
      service,
      `reserved ${items} for order ${order.orderId} (user ${order.userId}; partition ${msg.partition} offset ${msg.offset}${msg.attempt > 1 ? `, attempt ${msg.attempt}` : ''})`,
    )
  },
  { delivery: 'at-least-once' },
)
say(service, `subscribed to ${ordersTopic} as 'inventory' (at-least-once, one user's orders in order)`)
