import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import { RemoteDriver } from '../../src/client/remote-driver.ts'
import { FakeClock } from '../../src/core/clock.ts'
import type { ConformanceTarget, TargetInstance } from '../../src/core/conformance/suite.ts'
import { Sluice } from '../../src/core/sluice.ts'
import { fixture, runChild, type Child } from '../helpers/child.ts'

/**
 * The client against a broker in a child process, both on fake clocks that
 * move together: each step moves the client's clock, waits until the client
 * has its answers (a heartbeat's extend has reached the broker), then moves
 * the broker's.
 */
export function brokerTarget(backend?: {
  readonly name: string
  /** Where the broker keeps its data for one test (a redis:// URL), and how to remove it after. */
  readonly open: () => Promise<{ readonly where: string; readonly remove: () => Promise<void> }>
}): ConformanceTarget {
  return {
    name: backend?.name ?? 'broker',
    async open(t: TestContext): Promise<TargetInstance> {
      const data =
        backend === undefined
          ? await (async () => {
              const dir = await mkdtemp(join(tmpdir(), 'sluice-conformance-broker-'))
              return { where: dir, remove: () => rm(dir, { recursive: true, force: true }) }
            })()
          : await backend.open()
      const dir = data.where
      const clock = new FakeClock(Date.now())
      let port = 0
      let broker: Child
      const startBroker = async (): Promise<void> => {
        broker = runChild(null, fixture('broker.ts'), [dir, String(port), String(clock.now())])
        const line = await broker.waitForLine(/^listening /)
        port = Number(line.split(' ')[1])
      }
      await startBroker()
      let drivers: RemoteDriver[] = []
      let clients: Sluice[] = []
      const client = async (): Promise<Sluice> => {
        const driver = await RemoteDriver.connect({
          host: '127.0.0.1',
          port,
          connectTimeoutMs: 10_000,
          requestTimeoutMs: 30_000,
        })
        drivers.push(driver)
        const sluice = new Sluice(driver, { clock })
        clients.push(sluice)
        return sluice
      }
      let sluice = await client()
      const closeClients = async (): Promise<void> => {
        for (const c of clients) await c.close({ drain: false, timeoutMs: 0 }).catch(() => undefined)
        clients = []
        drivers = []
      }
      const stopBroker = async (): Promise<void> => {
        broker.process.kill('SIGTERM')
        const how = await Promise.race([
          broker.exited,
          new Promise((resolve) => setTimeout(resolve, 10_000, 'timeout')),
        ])
        if (how === 'timeout') await broker.kill9()
      }
      t.after(async () => {
        await closeClients()
        await stopBroker()
        await data.remove()
      })
      return {
        get sluice() {
          return sluice
        },
        async advance(ms: number, stepMs = 50): Promise<void> {
          for (let left = ms; left > 0; left -= stepMs) {
            const step = Math.min(stepMs, left)
            clock.advance(step)
            for (const driver of drivers) await driver.idle()
            await broker.ask({ advance: step })
            await turn()
          }
        },
        now: () => clock.now(),
        async restart() {
          await closeClients()
          await stopBroker()
          await startBroker()
          sluice = await client()
          return sluice
        },
        connect: client,
      }
    },
  }
}
