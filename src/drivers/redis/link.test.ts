import assert from 'node:assert/strict'
import { createServer } from 'node:net'
import { test } from 'node:test'
import { ErrorCode, hasCode } from '../../core/errors.ts'
import { open } from '../../open.ts'
import { parseRedisUrl } from './link.ts'

test('parseRedisUrl reads every form the README gives: host and port, user and password, db, prefix, TLS, cluster', () => {
  assert.deepEqual(parseRedisUrl('redis://127.0.0.1'), {
    cluster: false,
    nodes: [{ host: '127.0.0.1', port: 6379 }],
    tls: false,
    username: undefined,
    password: undefined,
    db: 0,
    prefix: 'sluice',
  })
  const full = parseRedisUrl('rediss://app:p%40ss:w@cache.internal:6380/2?prefix=myapp')
  assert.deepEqual(
    { ...full },
    {
      cluster: false,
      nodes: [{ host: 'cache.internal', port: 6380 }],
      tls: true,
      username: 'app',
      password: 'p@ss:w',
      db: 2,
      prefix: 'myapp',
    },
  )
  assert.equal(parseRedisUrl('redis://:secret@h').password, 'secret')
  assert.equal(parseRedisUrl('redis://[::1]:7000').nodes[0]!.host, '::1')
  const cluster = parseRedisUrl('redis+cluster://10.0.0.1:7000,10.0.0.2:7001')
  assert.equal(cluster.cluster, true)
  assert.deepEqual(cluster.nodes, [
    { host: '10.0.0.1', port: 7000 },
    { host: '10.0.0.2', port: 7001 },
  ])
})

test('a bad Redis URL fails with INVALID_ARGUMENT saying what to write instead', () => {
  const cases: [string, RegExp][] = [
    ['redis://', /no valid host:port/],
    ['redis://a:1,b:2', /redis\+cluster:\/\//],
    ['redis://h/x', /database must be a number/],
    ['redis+cluster://h:7000/3', /only database 0/],
    ['redis://h?prefix=a:b', /prefix must be letters/],
    ['redis://h:port', /no valid host:port/],
  ]
  for (const [url, message] of cases) {
    assert.throws(
      () => parseRedisUrl(url),
      (err: unknown) => hasCode(err, ErrorCode.InvalidArgument) && message.test((err as Error).message),
      url,
    )
  }
})

test('open() on a Redis nobody listens at fails with UNAVAILABLE naming the address, within its connect timeout', async () => {
  // A port that was free a moment ago: nothing answers there.
  const port = await new Promise<number>((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const address = server.address()
      server.close(() => resolve(typeof address === 'object' && address !== null ? address.port : 0))
    })
  })
  const started = Date.now()
  await assert.rejects(
    open({ url: `redis://127.0.0.1:${port}`, connectTimeoutMs: 2000 }),
    (err: unknown) => hasCode(err, ErrorCode.Unavailable) && (err as Error).message.includes(`127.0.0.1:${port}`),
  )
  assert.ok(Date.now() - started < 5000, 'gave up within about the connect timeout')
})
