import { Partitioner } from '../core/partition.ts'
import type { TopicInfo } from '../core/types.ts'
import type { TopicFlow } from './flow.ts'
import type { PartitionLog } from './log/partition-log.ts'

/** A topic inside the engine: its configuration, one log per partition, and its publishing flow control. */
export class Topic {
  readonly partitioner: Partitioner
  /** Set by the engine once the topic is open. */
  flow!: TopicFlow

  constructor(
    readonly info: TopicInfo,
    readonly logs: readonly PartitionLog[],
    /** Where its files live; null for a topic without files. */
    readonly dir: string | null,
  ) {
    this.partitioner = new Partitioner(info.partitions)
  }

  get name(): string {
    return this.info.name
  }
}
