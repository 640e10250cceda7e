import type { TestContext } from 'node:test'
import { Cluster, Redis } from 'ioredis'
import { FakeClock } from '../../src/core/clock.ts'
import { uuidv7 } from '../../src/core/ids.ts'
import type { Sluice } from '../../src/core/sluice.ts'
import { parseRedisUrl } from '../../src/drivers/redis/link.ts'
import { open } from '../../src/open.ts'
import { cleanup } from './cleanup.ts'

/** The Redis the tests share (the machine's, on 6379, keeping nothing on disk). */
export const sharedRedisUrl = process.env['SLUICE_TEST_REDIS_URL'] ?? 'redis://127.0.0.1:6379'

/**
 * A key prefix of its own for one test on a shared Redis: Sluice instances
 * opened through it see only this test's keys, and every key under the
 * prefix is removed when the test ends (after the instances are closed).
 */
export function redisPrefix(
  t: TestContext,
  options: { base?: string; clock?: FakeClock } = {},
): { url: string; prefix: string; clock: FakeClock; open: () => Promise<Sluice> } {
  const prefix = `sluice-test-${uuidv7()}`
  const base = options.base ?? sharedRedisUrl
  const url = `${base}${base.includes('?') ? '&' : '?'}prefix=${prefix}`
  const clock = options.clock ?? new FakeClock(Date.UTC(2026, 0, 1))
  const opened: Sluice[] = []
  cleanup(t, () => deleteByPrefix(url, prefix))
  return {
    url,
    prefix,
    clock,
    async open() {
      const sluice = await open({ url, clock })
      opened.push(sluice)
      cleanup(t, () => sluice.close().catch(() => undefined))
      return sluice
    },
  }
}

/** Removes every key under `prefix` (SCAN, never KEYS: the server may be shared), on every master of a cluster. */
export async function deleteByPrefix(url: string, prefix: string): Promise<void> {
  const endpoint = parseRedisUrl(url)
  if (endpoint.cluster) {
    const cluster = new Cluster(endpoint.nodes.map((n) => ({ host: n.host, port: n.port })))
    try {
      await cluster.ping()
      for (const node of cluster.nodes('master')) await deleteOn(node, prefix, true)
    } finally {
      cluster.disconnect()
    }
    return
  }
  const node = endpoint.nodes[0]!
  const redis = new Redis({ host: node.host, port: node.port, db: endpoint.db, lazyConnect: true })
  try {
    await redis.connect()
    await deleteOn(redis, prefix)
  } finally {
    redis.disconnect()
  }
}

/** On a cluster node one key at a time: a DEL of keys on several slots is refused (CROSSSLOT). */
async function deleteOn(redis: Redis, prefix: string, oneByOne = false): Promise<void> {
  let cursor = '0'
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
    cursor = next
    if (oneByOne) for (const key of keys) await redis.del(key)
    else if (keys.length > 0) await redis.del(...keys)
  } while (cursor !== '0')
}
