import type { Capabilities } from '../../src/core/capabilities.ts'
import { runConformance } from '../../src/core/conformance/suite.ts'
import { driverView } from '../../src/core/conformance/shared-driver.ts'
import { embeddedTarget } from './embedded-target.ts'

/**
 * The file engine behind a driver that declares much less than the engine
 * has: every case gated by a capability this target lacks must assert
 * UNSUPPORTED. This is how the suite's absent branches are proved on a
 * machine whose real targets declare (nearly) everything. Each list
 * capability keeps some values and lacks others. It keeps what the behaviour
 * cases assume (ordering 'key', delivery 'at-least-once'), and consumption
 * retention, which no call asks for: the engine deletes what was acknowledged
 * whatever is declared. File, not memory, so that the restart cases run too.
 */
const limited: Capabilities = {
  durability: ['interval', 'memory'],
  orderings: ['key', 'partition'],
  deliveries: ['at-least-once', 'exactly-once'],
  delayedDelivery: false,
  overflow: ['reject'],
  limitBy: ['maxMessages'],
  rateLimitScopes: ['producer'],
  dedupById: false,
  idempotentProducers: false,
  transactions: false,
  peek: false,
  consumptionRetention: true,
  retention: ['maxAgeMs'],
}

runConformance(
  embeddedTarget('file', { name: 'limited', wrap: (driver) => driverView(driver, { capabilities: limited }) }),
)
