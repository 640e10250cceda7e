import type { AppendRecord, Durability, Receipt, StoredRecord, TopicConfig, TopicInfo } from './types.ts'

/**
 * The contract every way of running Sluice implements: the embedded engine
 * (`file:`, `memory:`), the broker client (`sluice://`) and the drivers on
 * other engines. Small and batch-shaped; core (`Sluice`) does argument
 * checks, encoding and the handler runner on top of it, so those behave the
 * same everywhere.
 *
 * Drivers throw only `SluiceError`s, with the codes of `errors.ts`.
 */
export interface Driver {
  /** What this driver can do; `Sluice` turns a request for anything else into UNSUPPORTED. */
  readonly capabilities: Capabilities
  /** Creates a topic, or returns the existing one if every field the caller set matches (else CONFLICT). */
  createTopic(name: string, config: TopicConfig): Promise<TopicInfo>
  /** TOPIC_NOT_FOUND when absent. */
  describeTopic(name: string): Promise<TopicInfo>
  listTopics(): Promise<TopicInfo[]>
  /** Deletes a topic, its data and its subscriptions. TOPIC_NOT_FOUND when absent. */
  deleteTopic(name: string): Promise<void>
  /**
   * Stores records (partition chosen by key, round-robin without) and resolves
   * once they are stored as the topic's durability says. Checks every record
   * before storing any: one too large fails the batch with MESSAGE_TOO_LARGE.
   * Payloads may be views of the caller's memory: a driver copies or encodes
   * them before `append` returns, never later.
   */
  append(topic: string, records: readonly AppendRecord[]): Promise<Receipt[]>
  /** Up to `max` records of one partition from `fromOffset` (or the first retained one). */
  read(topic: string, partition: number, fromOffset: number, max: number): Promise<StoredRecord[]>
  /** Stops the driver once in-flight work has settled. */
  close(): Promise<void>
}

export interface Capabilities {
  /** Durability modes a topic may ask for. */
  readonly durability: readonly Durability[]
}
