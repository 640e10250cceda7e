import { open } from '../../open.ts'

/**
 * A short tour on the embedded engine: a checkout service publishes orders
 * keyed by user; the messages land on partitions by key, durably, and are read back.
 */
export async function demo(options: { url: string }, print: (line: string) => void): Promise<void> {
  const sluice = await open({ url: options.url })
  try {
    print(`Sluice demo on ${options.url} (embedded engine, no infrastructure)`)
    const topic = await sluice.createTopic('demo.orders', { partitions: 3, durability: 'fsync' })
    print(`topic ${topic.name}: ${topic.partitions} partitions, durability ${topic.durability}`)
    const users = ['alice', 'bob', 'carol', 'alice', 'bob', 'alice']
    for (const [i, user] of users.entries()) {
      const receipt = await sluice.publish(
        'demo.orders',
        { order: i + 1, user, total: 10 * (i + 1) },
        { key: user, headers: { source: 'checkout' } },
      )
      print(
        `published order ${i + 1} for ${user} -> partition ${receipt.partition}, offset ${receipt.offset} (fsynced)`,
      )
    }
    print('reading every partition back (messages of one user share a partition, in order):')
    for (let partition = 0; partition < topic.partitions; partition++) {
      const messages = await sluice.read<{ order: number; user: string }>('demo.orders', partition, 0, 1000)
      const recent = messages.slice(-6)
      print(
        `  partition ${partition}: ${messages.length} messages; latest ${recent.map((m) => `#${m.data.order}(${m.data.user})@${m.offset}`).join(' ') || '-'}`,
      )
    }
    print('run it again: the offsets continue, because the log is on disk.')
  } finally {
    await sluice.close()
  }
}
