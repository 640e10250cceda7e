import type { TestContext } from 'node:test'
import { RemoteDriver } from '../../src/client/remote-driver.ts'
import { fixture, runChild, type Child } from './child.ts'
import { cleanup } from './cleanup.ts'

/** A broker process (test/fixtures/broker.ts) on `dir` at a free port, stopped when the test ends. */
export async function startBrokerChild(
  t: TestContext,
  dir: string,
  env: NodeJS.ProcessEnv = {},
): Promise<{ broker: Child; port: number }> {
  const broker = runChild(t, fixture('broker.ts'), [dir, '0'], env)
  const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
  return { broker, port }
}

/** A driver connected to the broker at `port`, closed when the test ends. */
export async function connectDriver(t: TestContext, port: number): Promise<RemoteDriver> {
  const driver = await RemoteDriver.connect({
    host: '127.0.0.1',
    port,
    connectTimeoutMs: 10_000,
    requestTimeoutMs: 30_000,
  })
  cleanup(t, () => driver.close())
  return driver
}
