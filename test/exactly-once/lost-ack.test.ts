import assert from 'node:assert/strict'
import { test } from 'node:test'
import { open } from '../../src/index.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { tempDir } from '../helpers/temp-dir.ts'

async function storedIds(url: string): Promise<string[]> {
  const sluice = await open({ url })
  try {
    const ids: string[] = []
    for (let p = 0; p < 3; p++) {
      for (let from = 0; ;) {
        const batch = await sluice.read('payments', p, from, 5000)
        if (batch.length === 0) break
        ids.push(...batch.map((m) => m.id))
        from = batch[batch.length - 1]!.offset + 1
      }
    }
    return ids
  } finally {
    await sluice.close()
  }
}

for (const via of ['engine', 'broker'] as const) {
  test(`${via}: a producer process whose every publish loses its answer retries without storing anything twice`, async (t) => {
    const dir = await tempDir(t)
    let url = `file:${dir}`
    if (via === 'broker') {
      const broker = runChild(t, fixture('broker.ts'), [dir, '0'])
      url = `sluice://127.0.0.1:${(await broker.waitForLine(/^listening /)).split(' ')[1]}`
    }
    const producer = runChild(t, fixture('lost-ack-producer.ts'), [url, '300'])
    assert.equal(await producer.exited, 0)
    const receipts = producer.lines.filter((l) => l.startsWith('receipt '))
    assert.equal(receipts.length, 350)
    const [, calls, , lost] = producer.lines.find((l) => l.startsWith('calls '))!.split(' ')
    t.diagnostic(`${calls} append calls, ${lost} answers lost and retried`)
    assert.equal(Number(lost), 301, 'every publish lost its first answer')
    assert.ok(
      receipts.every((l) => l.endsWith(' true')),
      'every answer that arrived was the retry, recognised as a duplicate',
    )
    const ids = await storedIds(url)
    assert.equal(ids.length, 350, 'each message stored once')
    assert.equal(new Set(ids).size, 350)
    const receiptIds = receipts.map((l) => l.split(' ')[1]!)
    assert.deepEqual([...new Set(receiptIds)].sort(), [...ids].sort())
  })
}
