import type { TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { uuidv7 } from '../../src/core/ids.ts'
import {
  runRealClockConformance,
  type ConformanceTarget,
  type TargetInstance,
} from '../../src/core/conformance/suite.ts'
import type { Sluice } from '../../src/core/sluice.ts'
import { open } from '../../src/open.ts'
import { fixture, runChild } from '../helpers/child.ts'
import { cleanup } from '../helpers/cleanup.ts'
import { deleteByPrefix } from '../helpers/redis-prefix.ts'

/** A target on the real clock: `advance` waits, `now` is Date.now(). */
function realTarget(
  name: string,
  start: (t: TestContext) => Promise<{ url: string; stop: () => Promise<void> }>,
): ConformanceTarget {
  return {
    name,
    async open(t: TestContext): Promise<TargetInstance> {
      const where = await start(t)
      const clients: Sluice[] = []
      const client = async (): Promise<Sluice> => {
        const sluice = await open({ url: where.url })
        clients.push(sluice)
        return sluice
      }
      const sluice = await client()
      cleanup(t, async () => {
        for (const c of clients) await c.close({ drain: false, timeoutMs: 0 }).catch(() => undefined)
        await where.stop()
      })
      return {
        sluice,
        advance: (ms) => sleep(ms),
        now: () => Date.now(),
        connect: client,
      }
    },
  }
}

runRealClockConformance(realTarget('memory', () => Promise.resolve({ url: 'memory:', stop: () => Promise.resolve() })))

runRealClockConformance(
  realTarget('file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'sluice-real-clock-'))
    return { url: `file:${dir}`, stop: () => rm(dir, { recursive: true, force: true }) }
  }),
)

runRealClockConformance(
  realTarget('broker', async (t) => {
    const broker = runChild(t, fixture('broker.ts'), ['memory', '0'])
    const line = await broker.waitForLine(/^listening /)
    return { url: `sluice://127.0.0.1:${line.split(' ')[1]}`, stop: () => Promise.resolve() }
  }),
)

const redis = process.env.SLUICE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
runRealClockConformance(
  realTarget('redis', () => {
    const prefix = `sluice-test-${uuidv7()}`
    const url = `${redis}?prefix=${prefix}`
    return Promise.resolve({ url, stop: () => deleteByPrefix(url, prefix) })
  }),
)
