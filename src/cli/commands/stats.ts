import type { Command } from 'commander'
import type { TopicStats } from '../../core/types.ts'
import { addClientOptions, withSluice, type ClientOptions } from '../options.ts'
import { formatBytes, formatMs, printJson, printLine, table } from '../output.ts'

/** `sluice stats <topic>`: a topic's partitions and subscriptions. */

function statsLines(stats: TopicStats): string[] {
  const lines = [
    `topic ${stats.topic}: ${stats.messages} message${stats.messages === 1 ? '' : 's'} stored, ${formatBytes(stats.bytes)}, ${stats.partitions.length} partition${stats.partitions.length === 1 ? '' : 's'}`,
    '',
    ...table(
      ['PARTITION', 'START OFFSET', 'END OFFSET', 'BYTES'],
      stats.partitions.map((p) => [p.partition, p.startOffset, p.endOffset, formatBytes(p.bytes)]),
    ),
    '',
  ]
  if (stats.subscriptions.length === 0) return [...lines, 'no subscriptions']
  return [
    ...lines,
    ...table(
      [
        'SUBSCRIPTION',
        'ORDERING',
        'DELIVERY',
        'CONSUMERS',
        'DEPTH',
        'IN FLIGHT',
        'DELAYED',
        'OLDEST UNACKED',
        'ACKED',
        'REDELIVERED',
        'DEAD-LETTERED',
        'DROPPED',
        'EXPIRED UNREAD',
      ],
      stats.subscriptions.map((s) => [
        s.subscription,
        s.ordering,
        s.delivery,
        s.consumers,
        s.depth,
        s.inFlight,
        s.delayed,
        formatMs(s.oldestUnackedAgeMs),
        s.acked,
        s.redeliveries,
        s.deadLettered,
        s.dropped,
        s.expiredUnread,
      ]),
    ),
    '(acked, redelivered, dead-lettered, dropped and expired unread count since the broker started)',
  ]
}

export function registerStats(program: Command): void {
  addClientOptions(
    program
      .command('stats')
      .summary("a topic's partitions and subscriptions: depth, in flight, counters")
      .description(
        "a topic's figures: stored offsets per partition; depth, in flight, consumers and counters per subscription",
      )
      .argument('<topic>', 'the topic'),
    'print the TopicStats as JSON: { topic, messages, bytes, partitions: [...], subscriptions: [...] }',
  ).action(async (topic: string, options: ClientOptions) => {
    const stats = await withSluice(options, (sluice) => sluice.stats(topic))
    if (options.json === true) {
      printJson(stats)
      return
    }
    for (const line of statsLines(stats)) printLine(line)
  })
}
