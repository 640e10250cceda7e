import { runConformance } from '../../src/core/conformance/suite.ts'
import { redisTarget } from './redis-target.ts'

// The machine's Redis on 6379 (no persistence: durability 'memory' only, which the suite reads from capabilities).
runConformance(redisTarget('redis', process.env.SLUICE_TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'))
