/** Defaults and hard limits shared by every driver. Units are in the names. */
export const limits = {
  topicNameMaxLength: 200,
  maxPartitions: 1024,
  defaultMaxMessageBytes: 1024 * 1024,
  maxMessageBytesCeiling: 64 * 1024 * 1024,
  defaultSegmentBytes: 64 * 1024 * 1024,
  minSegmentBytes: 1024,
  maxSegmentBytes: 1024 * 1024 * 1024,
  defaultFsyncIntervalMs: 100,
  maxFsyncIntervalMs: 60_000,
  messageIdMaxLength: 1024,
  readMax: 10_000,
  defaultDedupWindowMs: 120_000,
  defaultMemoryBytes: 64 * 1024 * 1024,
  maxDedupWindowMs: 7 * 86_400_000,
  /** How long a publish waits for room ('block') or a rate slot ('wait') unless it says otherwise. */
  defaultPublishWaitMs: 30_000,
} as const
