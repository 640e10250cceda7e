import assert from 'node:assert/strict'
import { test } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { open } from '../../src/index.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { runSeed, seededRandom } from '../helpers/random.ts'
import { tempDir } from '../helpers/temp-dir.ts'
import { waitFor } from '../helpers/wait-for.ts'

test('a consumer killed -9 while holding messages: what it acknowledged never comes back, what it held does', async (t) => {
  const seed = runSeed()
  t.diagnostic(`seed ${seed}`)
  const random = seededRandom(seed)
  const dir = await tempDir(t)
  const total = 1500
  let sluice = await open({ url: `file:${dir}` })
  await sluice.createTopic('jobs', { partitions: 3, durability: 'fsync' })
  await sluice.publishBatch(
    'jobs',
    Array.from({ length: total }, (_, i) => ({ data: i, key: `k${i % 40}` })),
  )
  await sluice.close()

  const acked = new Set<number>()
  const heldLast = new Set<number>()
  // Delivered to a consumer that was killed before it printed an ack: the ack may or may not have landed.
  const inDoubt = new Set<number>()
  for (let round = 0; round < 3; round++) {
    const child = runChild(t, fixture('crash-consumer.ts'), [dir, 'jobs', '4'])
    await child.waitForLine(/^ready$/)
    const target = acked.size + 100 + Math.floor(random() * 200)
    await waitFor(
      'the consumer to make progress',
      () => child.lines.filter((l) => l.startsWith('acked')).length + acked.size >= Math.min(target, total - 20),
      30_000,
    )
    await sleep(random() * 20)
    await child.kill9()
    heldLast.clear()
    for (const line of child.lines) {
      const [word, value] = line.split(' ')
      if (word === 'acked') {
        assert.ok(!acked.has(Number(value)), `message ${value} was acknowledged twice`)
        acked.add(Number(value))
        inDoubt.delete(Number(value))
      }
      if (word === 'holding') {
        heldLast.add(Number(value))
        inDoubt.delete(Number(value))
      }
      if (word === 'delivered') {
        // A message acknowledged by an earlier (killed) consumer must never be delivered again.
        assert.ok(!acked.has(Number(value)), `acknowledged message ${value} came back`)
        inDoubt.add(Number(value))
      }
    }
  }
  t.diagnostic(`${acked.size} acknowledged before the kills; ${heldLast.size} held by the last consumer`)
  assert.ok(heldLast.size > 0)

  sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  const after = new Map<number, number>()
  await sluice.subscribe<number>('jobs', 'workers', (m) => void after.set(m.data, m.attempt), {
    concurrency: 16,
    ordering: 'none',
  })
  // Everything not acknowledged comes back, except messages whose ack reached the journal just before the kill.
  const mustComeBack = [...Array(total).keys()].filter((v) => !acked.has(v) && !inDoubt.has(v))
  await waitFor('every unacknowledged message', () => mustComeBack.every((v) => after.has(v)), 30_000)
  await waitFor(
    'the deliveries to settle',
    async () => (await sluice.stats('jobs')).subscriptions[0]!.depth === 0,
    30_000,
  )
  for (const value of acked) assert.ok(!after.has(value), `acknowledged message ${value} came back after restart`)
  for (const value of heldLast) {
    assert.ok(after.has(value), `held message ${value} did not come back`)
    assert.ok(
      after.get(value)! >= 2,
      `held message ${value} came back as attempt ${after.get(value)}: its delivery was not counted`,
    )
  }
  const inDoubtBack = [...inDoubt].filter((v) => after.has(v)).length
  t.diagnostic(
    `${inDoubt.size} in doubt at the kills (ack written, not yet confirmed): ${inDoubtBack} came back, ${inDoubt.size - inDoubtBack} had landed`,
  )
  assert.ok(inDoubt.size <= 3 * 16 * 2, `${inDoubt.size} messages in doubt: more than the consumers had in hand`)
})
