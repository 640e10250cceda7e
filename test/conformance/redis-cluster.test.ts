import { after } from 'node:test'
import { runConformance } from '../../src/core/conformance/suite.ts'
import { startRedisCluster, type RedisCluster } from '../helpers/redis-servers.ts'
import { redisTarget } from './redis-target.ts'

// A 3-master Redis Cluster on free loopback ports, started for this file and stopped after it.
let cluster: Promise<RedisCluster> | null = null
const url = async (): Promise<string> => (await (cluster ??= startRedisCluster(3))).url
after(async () => {
  if (cluster !== null) await (await cluster).stop()
})

runConformance(redisTarget('redis cluster', url))
