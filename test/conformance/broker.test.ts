import { runConformance } from '../../src/core/conformance/suite.ts'
import { brokerTarget } from './broker-target.ts'

runConformance(brokerTarget())
