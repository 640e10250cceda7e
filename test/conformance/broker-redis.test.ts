import { uuidv7 } from '../../src/core/ids.ts'
import { runConformance } from '../../src/core/conformance/suite.ts'
import { brokerTarget } from './broker-target.ts'
import { deleteByPrefix } from '../helpers/redis-prefix.ts'

// The broker (`sluice serve --url redis://…`) in front of the machine's Redis: clients speak the protocol, the
// broker runs the Redis driver. Each test has its own key prefix.
const base = process.env.SLUICE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'
runConformance(
  brokerTarget({
    name: 'broker over redis',
    open: () => {
      const prefix = `sluice-test-${uuidv7()}`
      const where = `${base}?prefix=${prefix}`
      return Promise.resolve({ where, remove: () => deleteByPrefix(where, prefix) })
    },
  }),
)
