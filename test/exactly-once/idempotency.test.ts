import assert from 'node:assert/strict'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { open } from '../../src/index.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { tempDir } from '../helpers/temp-dir.ts'

const orders = 35

/** Runs the payment service until every order is handled, restarting it after each crash; returns the ledger. */
async function runUntilDrained(
  t: import('node:test').TestContext,
  crashAt: string,
  verify: boolean,
): Promise<{ charges: string[]; crashes: number; ids: string[] }> {
  const dir = await tempDir(t)
  const ledger = join(dir, 'ledger.txt')
  const sluice = await open({ url: `file:${dir}/data` })
  await sluice.createTopic('orders')
  const receipts = await sluice.publishBatch(
    'orders',
    Array.from({ length: orders }, (_, n) => ({ data: { n } })),
  )
  await sluice.close()
  let crashes = 0
  for (;;) {
    const service = runChild(t, fixture('payment-service.ts'), [`${dir}/data`, ledger], {
      CRASH_AT: crashAt,
      VERIFY: verify ? '1' : '0',
    })
    const outcome = await Promise.race([
      service.waitForLine(/^drained$/, 60_000).then(() => 'drained'),
      service.exited.then(() => 'crashed'),
    ])
    if (outcome === 'drained') {
      await service.kill9()
      break
    }
    crashes++
    assert.ok(crashes < 50, 'too many crashes')
  }
  const charges = existsSync(ledger)
    ? readFileSync(ledger, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
    : []
  return { charges, crashes, ids: receipts.map((r) => r.id) }
}

function counts(charges: string[]): Map<string, number> {
  const map = new Map<string, number>()
  for (const c of charges) map.set(c, (map.get(c) ?? 0) + 1)
  return map
}

test('idempotency helper: a crash after recording completion never repeats the side effect', async (t) => {
  const { charges, crashes, ids } = await runUntilDrained(t, 'after-record', false)
  t.diagnostic(`${crashes} crashes after the record, before the ack`)
  assert.ok(crashes >= 4)
  const perOrder = counts(charges)
  for (const id of ids) assert.equal(perOrder.get(id), 1, `order ${id} charged ${perOrder.get(id) ?? 0} times`)
})

test('idempotency helper with verify: a crash between the side effect and its record never repeats it', async (t) => {
  const { charges, crashes, ids } = await runUntilDrained(t, 'after-charge', true)
  t.diagnostic(`${crashes} crashes after charging, before recording`)
  assert.ok(crashes >= 4)
  const perOrder = counts(charges)
  for (const id of ids) assert.equal(perOrder.get(id), 1, `order ${id} charged ${perOrder.get(id) ?? 0} times`)
})

test('idempotency helper without verify: a crash between the side effect and its record repeats it (the documented window)', async (t) => {
  const { charges, crashes, ids } = await runUntilDrained(t, 'after-charge', false)
  const perOrder = counts(charges)
  const twice = ids.filter((id) => perOrder.get(id) === 2)
  t.diagnostic(`${crashes} crashes, ${twice.length} orders charged twice`)
  assert.equal(twice.length, crashes, 'exactly the crashed orders were charged again: nothing else')
  for (const id of ids) assert.ok((perOrder.get(id) ?? 0) >= 1, `order ${id} never charged`)
})
