import assert from 'node:assert/strict'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { ErrorCode, open, partitionForKey, SluiceError, type Sluice } from '../src/index.ts'
import { FakeClock } from '../src/testing.ts'
import { tempDir } from './helpers/temp-dir.ts'
import { waitFor } from './helpers/wait-for.ts'
import { cleanup } from './helpers/cleanup.ts'

function hasCode(code: string) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof SluiceError, `expected a SluiceError, got ${String(err)}`)
    assert.equal(err.code, code, err.message)
    return true
  }
}

const targets = [
  { name: 'file', url: async (t: import('node:test').TestContext) => `file:${await tempDir(t)}` },
  { name: 'memory', url: () => Promise.resolve('memory:') },
]

for (const target of targets) {
  test(`${target.name}: data, key, headers and id round-trip`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    await sluice.createTopic('orders', { partitions: 3 })
    const json = { order: 42, items: ['a', 'b'], nested: { ok: true, n: null } }
    const r1 = await sluice.publish('orders', json, {
      key: 'user-1',
      id: 'order-42',
      headers: { 'content-type': 'application/json', trace: 'abc' },
    })
    assert.deepEqual(r1, { id: 'order-42', partition: partitionForKey('user-1', 3), offset: 0, duplicate: false })
    const bytes = Buffer.from([0, 1, 2, 255])
    const r2 = await sluice.publish('orders', bytes, { key: '' })
    const r3 = await sluice.publish('orders', 'plain string')
    const [m1] = await sluice.read('orders', r1.partition, r1.offset, 1)
    assert.deepEqual(
      {
        id: m1!.id,
        key: m1!.key,
        data: m1!.data,
        headers: m1!.headers,
        topic: m1!.topic,
        partition: m1!.partition,
        offset: m1!.offset,
      },
      {
        id: 'order-42',
        key: 'user-1',
        data: json,
        headers: { 'content-type': 'application/json', trace: 'abc' },
        topic: 'orders',
        partition: r1.partition,
        offset: 0,
      },
    )
    assert.ok(Math.abs(m1!.timestamp - Date.now()) < 60_000)
    const [m2] = await sluice.read('orders', r2.partition, r2.offset, 1)
    assert.ok(Buffer.isBuffer(m2!.data) && m2!.data.equals(bytes))
    assert.equal(m2!.key, '')
    assert.match(r2.id, /^[0-9a-f]{8}-[0-9a-f]{4}-7/)
    const [m3] = await sluice.read('orders', r3.partition, r3.offset, 1)
    assert.equal(m3!.data, 'plain string')
    assert.equal(m3!.key, null)
  })

  test(`${target.name}: keys land on Kafka's murmur2 partitions and offsets are dense per partition`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    await sluice.createTopic('events', { partitions: 8 })
    const receipts = await Promise.all(
      Array.from({ length: 400 }, (_, i) => sluice.publish('events', i, { key: `k${i % 37}` })),
    )
    for (const [i, receipt] of receipts.entries()) assert.equal(receipt.partition, partitionForKey(`k${i % 37}`, 8))
    for (let p = 0; p < 8; p++) {
      const offsets = receipts
        .filter((r) => r.partition === p)
        .map((r) => r.offset)
        .sort((a, b) => a - b)
      assert.deepEqual(
        offsets,
        offsets.map((_, i) => i),
        `partition ${p}`,
      )
      const stored = await sluice.read('events', p, 0, 1000)
      assert.deepEqual(
        stored.map((m) => m.offset),
        offsets,
      )
    }
    const keyless = await sluice.publishBatch(
      'events',
      Array.from({ length: 16 }, (_, i) => ({ data: i })),
    )
    const counts = new Map<number, number>()
    for (const r of keyless) counts.set(r.partition, (counts.get(r.partition) ?? 0) + 1)
    assert.deepEqual([...counts.values()], Array(8).fill(2), 'keyless messages spread round-robin')
  })

  test(`${target.name}: unknown topics fail with TOPIC_NOT_FOUND`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    await assert.rejects(sluice.publish('nope', 1), hasCode(ErrorCode.TopicNotFound))
    await assert.rejects(sluice.publishBatch('nope', [{ data: 1 }]), hasCode(ErrorCode.TopicNotFound))
    await assert.rejects(sluice.describeTopic('nope'), hasCode(ErrorCode.TopicNotFound))
    await assert.rejects(sluice.read('nope', 0, 0, 1), hasCode(ErrorCode.TopicNotFound))
    await assert.rejects(sluice.deleteTopic('nope'), hasCode(ErrorCode.TopicNotFound))
    await assert.rejects(sluice.publish('nope', 1), (err: SluiceError) => /create it first/.test(err.message))
  })

  test(`${target.name}: bad names and options fail with INVALID_ARGUMENT`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    await sluice.createTopic('ok')
    const badNames = ['', '.hidden', '_reserved', 'has space', 'slash/y', 'a'.repeat(201), 'ü', '..']
    for (const name of badNames) {
      await assert.rejects(sluice.createTopic(name), hasCode(ErrorCode.InvalidArgument), `name ${JSON.stringify(name)}`)
      await assert.rejects(
        sluice.publish(name, 1),
        hasCode(ErrorCode.InvalidArgument),
        `publish to ${JSON.stringify(name)}`,
      )
    }
    const badConfigs: unknown[] = [
      { partitions: 0 },
      { partitions: 1.5 },
      { partitions: 5000 },
      { durability: 'sometimes' },
      { retention: { maxAgeMs: -1 } },
      { retention: 5 },
      { maxMessageBytes: 0 },
      { segmentBytes: 10 },
      { partitons: 3 },
      'config',
    ]
    for (const config of badConfigs) {
      await assert.rejects(
        sluice.createTopic('t1', config as never),
        hasCode(ErrorCode.InvalidArgument),
        JSON.stringify(config),
      )
    }
    const badPublishes: unknown[] = [
      { key: 5 },
      { id: '' },
      { headers: { a: 1 } },
      { headers: 'x' },
      { delayMs: -5 },
      { delayMs: 1, deliverAt: 5 },
      { kee: 'typo' },
    ]
    for (const options of badPublishes) {
      await assert.rejects(
        sluice.publish('ok', 1, options as never),
        hasCode(ErrorCode.InvalidArgument),
        JSON.stringify(options),
      )
    }
    await assert.rejects(sluice.publish('ok', undefined), hasCode(ErrorCode.InvalidArgument))
    await assert.rejects(
      sluice.publish('ok', () => 1),
      hasCode(ErrorCode.InvalidArgument),
    )
    await assert.rejects(sluice.read('ok', 1, 0, 10), hasCode(ErrorCode.InvalidArgument), 'partition out of range')
    await assert.rejects(sluice.read('ok', 0, -1, 10), hasCode(ErrorCode.InvalidArgument))
    await assert.rejects(
      sluice.publishBatch('ok', [{ data: 1 }, { nodata: 1 } as never]),
      hasCode(ErrorCode.InvalidArgument),
    )
    assert.deepEqual(await sluice.read('ok', 0, 0, 10), [], 'nothing was stored by the rejected calls')
    await assert.rejects(open({ url: 'ftp://x' }), hasCode(ErrorCode.InvalidArgument))
  })

  test(`${target.name}: an oversize message fails with MESSAGE_TOO_LARGE and nothing of its batch is stored`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    await sluice.createTopic('small', { maxMessageBytes: 1000, partitions: 2 })
    await assert.rejects(sluice.publish('small', Buffer.alloc(1001)), (err: SluiceError) => {
      hasCode(ErrorCode.MessageTooLarge)(err)
      assert.equal(err.details['limit'], 1000)
      assert.equal(err.details['size'], 1001)
      assert.match(err.message, /maxMessageBytes of 1000/)
      return true
    })
    await assert.rejects(
      sluice.publish('small', Buffer.alloc(990), { headers: { big: 'x'.repeat(20) } }),
      hasCode(ErrorCode.MessageTooLarge),
    )
    await assert.rejects(
      sluice.publishBatch('small', [
        { data: Buffer.alloc(10) },
        { data: Buffer.alloc(10) },
        { data: Buffer.alloc(5000) },
      ]),
      hasCode(ErrorCode.MessageTooLarge),
    )
    for (const p of [0, 1]) assert.deepEqual(await sluice.read('small', p, 0, 10), [])
    const ok = await sluice.publish('small', Buffer.alloc(1000))
    assert.equal(ok.offset, 0)
  })

  test(`${target.name}: createTopic is idempotent for the same config and CONFLICT for another`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    const created = await sluice.createTopic('orders', { partitions: 4, retention: { maxAgeMs: 60_000 } })
    assert.deepEqual(await sluice.createTopic('orders', { partitions: 4, retention: { maxAgeMs: 60_000 } }), created)
    assert.deepEqual(await sluice.createTopic('orders'), created, 'no fields given: accepts the existing topic')
    await assert.rejects(sluice.createTopic('orders', { partitions: 8 }), (err: SluiceError) => {
      hasCode(ErrorCode.Conflict)(err)
      assert.match(err.message, /partitions is 4, asked 8/)
      return true
    })
    await assert.rejects(sluice.createTopic('orders', { retention: { maxAgeMs: 1 } }), hasCode(ErrorCode.Conflict))
    assert.deepEqual(await sluice.describeTopic('orders'), created)
    assert.deepEqual(
      (await sluice.listTopics()).map((t) => t.name),
      ['orders'],
    )
    const concurrent = await Promise.all(Array.from({ length: 5 }, () => sluice.createTopic('racy', { partitions: 2 })))
    for (const info of concurrent) assert.deepEqual(info, concurrent[0])
  })

  test(`${target.name}: deleteTopic removes the topic and its messages`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    cleanup(t, () => sluice.close())
    await sluice.createTopic('temp')
    await sluice.publish('temp', 'old')
    await sluice.deleteTopic('temp')
    await assert.rejects(sluice.publish('temp', 1), hasCode(ErrorCode.TopicNotFound))
    await sluice.createTopic('temp')
    const receipt = await sluice.publish('temp', 'new')
    assert.equal(receipt.offset, 0)
    assert.deepEqual(
      (await sluice.read('temp', 0, 0, 10)).map((m) => m.data),
      ['new'],
    )
  })

  test(`${target.name}: every call after close throws CLOSED`, async (t) => {
    const sluice = await open({ url: await target.url(t) })
    await sluice.createTopic('x')
    await sluice.close()
    await assert.rejects(sluice.publish('x', 1), hasCode(ErrorCode.Closed))
    await assert.rejects(sluice.createTopic('y'), hasCode(ErrorCode.Closed))
    await assert.rejects(sluice.listTopics(), hasCode(ErrorCode.Closed))
    await sluice.close()
  })

  test(`${target.name}: autoCreateTopics creates a topic on first publish`, async (t) => {
    const sluice = await open({ url: await target.url(t), autoCreateTopics: true })
    cleanup(t, () => sluice.close())
    const receipt = await sluice.publish('fresh', { hello: 'world' })
    assert.equal(receipt.offset, 0)
    assert.equal((await sluice.describeTopic('fresh')).partitions, 1)
  })
}

test('a custom codec encodes every payload and decodes it on read', async (t) => {
  const codec = {
    encode: (value: unknown) => Buffer.from(`custom:${JSON.stringify(value)}`),
    decode: (bytes: Uint8Array) => JSON.parse(Buffer.from(bytes).toString().slice('custom:'.length)) as unknown,
  }
  const dir = await tempDir(t)
  const sluice = await open({ url: `file:${dir}`, codec })
  await sluice.createTopic('c')
  await sluice.publish('c', { a: [1, 2] })
  assert.deepEqual((await sluice.read('c', 0, 0, 1))[0]!.data, { a: [1, 2] })
  await sluice.close()
  // A reader without the codec gets the bytes as stored.
  const plain = await open({ url: `file:${dir}` })
  cleanup(t, () => plain.close())
  assert.equal(((await plain.read('c', 0, 0, 1))[0]!.data as Buffer).toString(), 'custom:{"a":[1,2]}')
})

test('a memory engine refuses disk durability with UNSUPPORTED', async (t) => {
  const sluice = await open({ url: 'memory:' })
  cleanup(t, () => sluice.close())
  await assert.rejects(sluice.createTopic('d', { durability: 'fsync' }), hasCode(ErrorCode.Unsupported))
  assert.equal((await sluice.createTopic('m')).durability, 'memory')
})

test('close and reopen keeps every topic and message, and publishing goes on at the next offset', async (t) => {
  const dir = await tempDir(t)
  let sluice: Sluice = await open({ url: `file:${dir}` })
  await sluice.createTopic('durable', { partitions: 2, durability: 'fsync' })
  await sluice.createTopic('relaxed', { durability: 'interval', fsyncIntervalMs: 10 })
  await sluice.createTopic('volatile', { durability: 'memory' })
  const sent = await sluice.publishBatch(
    'durable',
    Array.from({ length: 100 }, (_, i) => ({ data: { i }, key: `k${i}` })),
  )
  await sluice.publishBatch(
    'relaxed',
    Array.from({ length: 10 }, (_, i) => ({ data: i })),
  )
  await sluice.publish('volatile', 'gone after restart')
  const delayed = await sluice.publish('relaxed', 'later', { deliverAt: Date.now() + 3_600_000 })
  await sluice.close()

  sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  assert.deepEqual(
    (await sluice.listTopics()).map((x) => x.name),
    ['durable', 'relaxed', 'volatile'],
  )
  for (const receipt of sent) {
    const [m] = await sluice.read('durable', receipt.partition, receipt.offset, 1)
    assert.equal(m!.id, receipt.id)
  }
  const relaxed = await sluice.read('relaxed', 0, 0, 100)
  assert.deepEqual(
    relaxed.map((m) => m.data),
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 'later'],
  )
  assert.ok(relaxed[10]!.deliverAt! > Date.now() + 3_500_000, 'deliverAt is stored')
  assert.equal(relaxed[10]!.id, delayed.id)
  assert.deepEqual(await sluice.read('volatile', 0, 0, 10), [], 'memory durability is gone on restart')
  const next = await sluice.publish('durable', 'more', { key: 'k1' })
  assert.equal(next.offset, sent.filter((r) => r.partition === next.partition).length)
})

test('a message of 4 MiB or more at the start of a segment is still there after close and reopen', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => void warnings.push(warning)
  process.on('warning', onWarning)
  cleanup(t, () => process.off('warning', onWarning))
  const dir = await tempDir(t)
  let sluice: Sluice = await open({ url: `file:${dir}` })
  await sluice.createTopic('z', { maxMessageBytes: 16 << 20, durability: 'fsync' })
  const big = Buffer.alloc(4 << 20, 7)
  const first = await sluice.publish('z', big)
  const second = await sluice.publish('z', Buffer.from('ten bytes!'))
  await sluice.close()

  sluice = await open({ url: `file:${dir}` })
  cleanup(t, () => sluice.close())
  const stored = await sluice.read('z', 0, 0, 10)
  assert.deepEqual(
    stored.map((m) => m.id),
    [first.id, second.id],
  )
  assert.ok(Buffer.isBuffer(stored[0]!.data) && stored[0]!.data.equals(big))
  assert.equal((stored[1]!.data as Buffer).toString(), 'ten bytes!')
  // process.emitWarning reports on the next tick.
  await new Promise((resolve) => setImmediate(resolve))
  assert.deepEqual(
    warnings.filter((w) => w.name === 'SluiceRecoveryWarning').map((w) => w.message),
    [],
  )
})

test('retention by age deletes whole old segments, counted from the first retained offset', async (t) => {
  const dir = await tempDir(t)
  const clock = new FakeClock(Date.now())
  const sluice = await open({ url: `file:${dir}`, clock })
  cleanup(t, () => sluice.close())
  await sluice.createTopic('logs', { segmentBytes: 4096, retention: { maxAgeMs: 60_000 } })
  for (let i = 0; i < 50; i++) await sluice.publish('logs', { i, pad: 'p'.repeat(200) })
  clock.advance(120_000)
  for (let i = 50; i < 60; i++) await sluice.publish('logs', { i, pad: 'p'.repeat(200) })
  const partitionDir = join(dir, 'topics', 'logs', '0')
  const before = (await readdir(partitionDir)).filter((f) => f.endsWith('.log')).length
  assert.ok(before > 2)
  // Retention runs on the engine's clock.
  clock.advance(5_000)
  let first = 0
  await waitFor('old segments to be deleted', async () => {
    first = (await sluice.read('logs', 0, 0, 1))[0]!.offset
    return first > 0
  })
  const after = (await readdir(partitionDir)).filter((f) => f.endsWith('.log'))
  assert.ok(after.length < before)
  assert.equal(
    after[0],
    `${String(first).padStart(20, '0')}.log`,
    'whole segments went: the first left starts at the first retained offset',
  )
  assert.ok(first <= 50, 'nothing younger than maxAgeMs was deleted')
  const left = await sluice.read<{ i: number }>('logs', 0, 0, 100)
  assert.deepEqual(
    left.map((m) => m.data.i),
    Array.from({ length: 60 - first }, (_, i) => first + i),
  )
})
