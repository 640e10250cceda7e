import type { TestContext } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import { FakeClock } from '../../src/core/clock.ts'
import type { ConformanceTarget, TargetInstance } from '../../src/core/conformance/suite.ts'
import { uuidv7 } from '../../src/core/ids.ts'
import { Sluice } from '../../src/core/sluice.ts'
import { parseRedisUrl } from '../../src/drivers/redis/link.ts'
import { RedisDriver } from '../../src/drivers/redis/redis-driver.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { deleteByPrefix } from '../helpers/redis-prefix.ts'

/**
 * Sluice on a real Redis as a conformance target. Each test gets its own key
 * prefix (so tests share the server without seeing each other) and a fake
 * clock: the driver passes its clock's time to every script, so moving the
 * clock moves Redis time for Sluice. A restart is a new client process on the
 * same server (what a consumer service restarting sees).
 */
export function redisTarget(name: string, server: string | (() => Promise<string>)): ConformanceTarget {
  return {
    name,
    async open(t: TestContext): Promise<TargetInstance> {
      const baseUrl = typeof server === 'string' ? server : await server()
      const clock = new FakeClock(Date.now())
      const prefix = `sluice-test-${uuidv7()}`
      const url = `${baseUrl}${baseUrl.includes('?') ? '&' : '?'}prefix=${prefix}`
      let drivers: RedisDriver[] = []
      let clients: Sluice[] = []
      const client = async (): Promise<Sluice> => {
        const driver = await RedisDriver.connect({ endpoint: parseRedisUrl(url), clock })
        drivers.push(driver)
        const sluice = new Sluice(driver, { clock })
        clients.push(sluice)
        return sluice
      }
      let sluice = await client()
      const closeAll = async (): Promise<void> => {
        for (const c of clients) await c.close({ drain: false, timeoutMs: 0 }).catch(() => undefined)
        clients = []
        drivers = []
      }
      cleanup(t, async () => {
        await closeAll()
        await deleteByPrefix(url, prefix)
      })
      return {
        get sluice() {
          return sluice
        },
        async advance(ms: number, stepMs = 50): Promise<void> {
          for (let left = ms; left > 0; left -= stepMs) {
            clock.advance(Math.min(stepMs, left))
            for (const driver of drivers) await driver.idle()
            await turn()
          }
        },
        now: () => clock.now(),
        async restart() {
          await closeAll()
          sluice = await client()
          return sluice
        },
        connect: () => client(),
      }
    },
  }
}
