import assert from 'node:assert/strict'
import { test } from 'node:test'
import { murmur2, partitionForKey, Partitioner } from './partition.ts'

test('murmur2 matches the vectors of Kafka UtilsTest', () => {
  const vectors: [string, number][] = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
    // Every tail length (1 to 4 bytes), as hashed by Kafka's Utils.murmur2.
    ['1', -1993445489],
    ['12', 126087238],
    ['123', -267702483],
    ['1234', -1614185708],
    ['12345', -1188365604],
  ]
  for (const [key, expected] of vectors) {
    assert.equal(murmur2(Buffer.from(key, 'utf8')), expected, `murmur2(${JSON.stringify(key)})`)
  }
})

test('a key lands on the partition Kafka would choose', () => {
  assert.equal(partitionForKey('foobar', 50), 16)
  assert.equal(partitionForKey('abc', 1), 0)
})

test('keys are hashed as UTF-8 bytes, not UTF-16 code units', () => {
  const key = 'zürich-東京'
  assert.equal(partitionForKey(key, 1000), (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % 1000)
  assert.notEqual(murmur2(Buffer.from(key, 'utf8')), murmur2(Buffer.from(key, 'latin1')))
})

test('the empty string is a key like any other', () => {
  const partitioner = new Partitioner(7)
  const first = partitioner.choose('')
  for (let i = 0; i < 10; i++) assert.equal(partitioner.choose(''), first)
  assert.equal(first, (murmur2(new Uint8Array(0)) & 0x7fffffff) % 7)
})

test('keyless messages go round-robin over the partitions', () => {
  const partitioner = new Partitioner(3)
  const chosen = Array.from({ length: 7 }, () => partitioner.choose(undefined))
  assert.deepEqual(chosen, [0, 1, 2, 0, 1, 2, 0])
  assert.equal(new Partitioner(3).choose(null), 0)
})
