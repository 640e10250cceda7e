import { runConformance } from '../../src/core/conformance/suite.ts'
import { embeddedTarget } from './embedded-target.ts'

runConformance(embeddedTarget('memory'))
