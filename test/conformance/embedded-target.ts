import type { TestContext } from 'node:test'
import { setImmediate as turn } from 'node:timers/promises'
import { FakeClock } from '../../src/core/clock.ts'
import type { ConformanceTarget, TargetInstance } from '../../src/core/conformance/suite.ts'
import { sharedDriver } from '../../src/core/conformance/shared-driver.ts'
import type { Driver } from '../../src/core/driver.ts'
import { Sluice } from '../../src/core/sluice.ts'
import { Engine } from '../../src/engine/engine.ts'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { cleanup } from '../helpers/cleanup.ts'

export interface EmbeddedTargetOptions {
  /** The target's name (default the kind). */
  readonly name?: string
  /** Wraps every driver a client of the instance is given (to declare fewer capabilities, say). */
  readonly wrap?: (driver: Driver) => Driver
}

/** The embedded engine as a conformance target: in memory, or in a temp data directory. */
export function embeddedTarget(kind: 'memory' | 'file', options: EmbeddedTargetOptions = {}): ConformanceTarget {
  const wrap = options.wrap ?? ((driver: Driver) => driver)
  return {
    name: options.name ?? kind,
    async open(t: TestContext): Promise<TargetInstance> {
      const clock = new FakeClock(Date.now())
      const dir = kind === 'file' ? await mkdtemp(join(tmpdir(), 'sluice-conformance-')) : undefined
      let engine = await Engine.open({ dir, clock })
      let clients: Sluice[] = []
      const client = (driver: Driver): Sluice => {
        const sluice = new Sluice(wrap(driver), { clock })
        clients.push(sluice)
        return sluice
      }
      let sluice = client(engine)
      const closeAll = async (): Promise<void> => {
        for (const c of clients) await c.close({ drain: false, timeoutMs: 0 }).catch(() => undefined)
        clients = []
        await engine.close()
      }
      // Close before removing the directory: the engine may still be writing.
      cleanup(t, async () => {
        await closeAll()
        if (dir !== undefined) await rm(dir, { recursive: true, force: true })
      })
      return {
        get sluice() {
          return sluice
        },
        async advance(ms: number, stepMs = 50): Promise<void> {
          for (let left = ms; left > 0; left -= stepMs) {
            clock.advance(Math.min(stepMs, left))
            await turn()
          }
        },
        now: () => clock.now(),
        restart:
          kind === 'file'
            ? async () => {
                await closeAll()
                engine = await Engine.open({ dir, clock })
                sluice = client(engine)
                return sluice
              }
            : undefined,
        connect: () => Promise.resolve(client(sharedDriver(engine))),
      }
    },
  }
}
