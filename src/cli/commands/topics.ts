import { Option, type Command } from 'commander'
import { ErrorCode, hasCode } from '../../core/errors.ts'
import { Durability, type TopicConfig, type TopicInfo } from '../../core/types.ts'
import { addClientOptions, integer, positiveInteger, withSluice, type ClientOptions } from '../options.ts'
import { fields, formatBytes, formatMs, formatTime, printJson, printLine, table } from '../output.ts'

/** `sluice topics list|create|describe|delete`. */

interface CreateOptions extends ClientOptions {
  readonly partitions?: number
  readonly durability?: Durability
  readonly fsyncIntervalMs?: number
  readonly retentionMaxAgeMs?: number
  readonly retentionMaxBytes?: number
  readonly maxMessageBytes?: number
  readonly segmentBytes?: number
  readonly dedupWindowMs?: number
}

function retention(topic: TopicInfo): string {
  const { maxAgeMs, maxBytes } = topic.retention
  const limits = [
    ...(maxAgeMs === null ? [] : [`max age ${formatMs(maxAgeMs)}`]),
    ...(maxBytes === null ? [] : [`max ${formatBytes(maxBytes)} per partition`]),
  ]
  return limits.length === 0 ? 'until acknowledged' : `${limits.join(', ')} (or until acknowledged)`
}

function durability(topic: TopicInfo): string {
  return topic.durability === Durability.Interval
    ? `interval (fsync every ${formatMs(topic.fsyncIntervalMs)})`
    : topic.durability
}

function describeLines(topic: TopicInfo): string[] {
  return fields([
    ['topic', topic.name],
    ['partitions', topic.partitions],
    ['durability', durability(topic)],
    ['retention', retention(topic)],
    ['max message', formatBytes(topic.maxMessageBytes)],
    ['segment size', formatBytes(topic.segmentBytes)],
    ['dedup window', topic.dedupWindowMs === 0 ? 'off' : formatMs(topic.dedupWindowMs)],
    ['created', formatTime(topic.createdAt)],
  ])
}

/** Only the fields given on the command line: createTopic compares just those with an existing topic. */
function topicConfig(options: CreateOptions): TopicConfig {
  const retention = {
    ...(options.retentionMaxAgeMs === undefined ? {} : { maxAgeMs: options.retentionMaxAgeMs }),
    ...(options.retentionMaxBytes === undefined ? {} : { maxBytes: options.retentionMaxBytes }),
  }
  return {
    ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
    ...(options.durability === undefined ? {} : { durability: options.durability }),
    ...(options.fsyncIntervalMs === undefined ? {} : { fsyncIntervalMs: options.fsyncIntervalMs }),
    ...(Object.keys(retention).length === 0 ? {} : { retention }),
    ...(options.maxMessageBytes === undefined ? {} : { maxMessageBytes: options.maxMessageBytes }),
    ...(options.segmentBytes === undefined ? {} : { segmentBytes: options.segmentBytes }),
    ...(options.dedupWindowMs === undefined ? {} : { dedupWindowMs: options.dedupWindowMs }),
  }
}

export function registerTopics(program: Command): void {
  const topics = program.command('topics').description('list, create, describe and delete topics').helpCommand(false)

  addClientOptions(
    topics.command('list').description('list every topic with its settings, sorted by name'),
    'print a JSON array of topics',
  ).action(async (options: ClientOptions) => {
    const list = await withSluice(options, (sluice) => sluice.listTopics())
    if (options.json === true) {
      printJson(list)
      return
    }
    if (list.length === 0) {
      printLine('no topics')
      return
    }
    const rows = list.map((t) => [
      t.name,
      t.partitions,
      t.durability,
      retention(t),
      formatBytes(t.maxMessageBytes),
      formatTime(t.createdAt),
    ])
    for (const line of table(['TOPIC', 'PARTITIONS', 'DURABILITY', 'RETENTION', 'MAX MESSAGE', 'CREATED'], rows))
      printLine(line)
  })

  addClientOptions(
    topics
      .command('create')
      .summary('create a topic (idempotent)')
      .description(
        'create a topic; if it exists and every setting given matches, succeed without change (a different value fails with CONFLICT)',
      )
      .argument('<name>', 'the topic name')
      .addOption(new Option('--partitions <n>', 'partitions, fixed at creation (default 1)').argParser(positiveInteger))
      .addOption(
        new Option(
          '--durability <level>',
          'when a publish counts as stored (default fsync; memory on a memory: engine)',
        ).choices(Object.values(Durability)),
      )
      .addOption(
        new Option(
          '--fsync-interval-ms <ms>',
          'with --durability interval: how often the log is fsynced (default 100)',
        ).argParser(positiveInteger),
      )
      .addOption(
        new Option(
          '--retention-max-age-ms <ms>',
          'delete whole segments whose newest message is older than this, read or not',
        ).argParser(positiveInteger),
      )
      .addOption(
        new Option(
          '--retention-max-bytes <n>',
          'delete the oldest whole segments while a partition holds more than this, read or not',
        ).argParser(positiveInteger),
      )
      .addOption(
        new Option(
          '--max-message-bytes <n>',
          'the largest message (payload, key and headers; default 1 MiB)',
        ).argParser(positiveInteger),
      )
      .addOption(
        new Option(
          '--segment-bytes <n>',
          "size at which a partition's log rolls to a new segment (default 64 MiB)",
        ).argParser(integer),
      )
      .addOption(
        new Option(
          '--dedup-window-ms <ms>',
          'a message id published again within this window is stored once (default 120000; 0 turns it off)',
        ).argParser(integer),
      ),
    'print the topic as JSON',
  ).action(async (name: string, options: CreateOptions) => {
    const { topic, existed } = await withSluice(options, async (sluice) => {
      // Only to say "created" or "already exists"; createTopic itself is idempotent.
      const existed = await sluice.describeTopic(name).then(
        () => true,
        (err: unknown) => {
          if (hasCode(err, ErrorCode.TopicNotFound)) return false
          throw err
        },
      )
      return { topic: await sluice.createTopic(name, topicConfig(options)), existed }
    })
    if (options.json === true) {
      printJson(topic)
      return
    }
    printLine(existed ? `topic ${topic.name} already exists with these settings` : `created topic ${topic.name}`)
    for (const line of describeLines(topic)) printLine(line)
  })

  addClientOptions(
    topics.command('describe').description("show a topic's settings").argument('<name>', 'the topic name'),
    'print the topic as JSON',
  ).action(async (name: string, options: ClientOptions) => {
    const topic = await withSluice(options, (sluice) => sluice.describeTopic(name))
    if (options.json === true) {
      printJson(topic)
      return
    }
    for (const line of describeLines(topic)) printLine(line)
  })

  addClientOptions(
    topics
      .command('delete')
      .description('delete a topic with its messages and subscriptions')
      .argument('<name>', 'the topic name'),
    'print { "topic": name, "deleted": true } as JSON',
  ).action(async (name: string, options: ClientOptions) => {
    await withSluice(options, (sluice) => sluice.deleteTopic(name))
    if (options.json === true) {
      printJson({ topic: name, deleted: true })
      return
    }
    printLine(`deleted topic ${name}`)
  })
}
