import { Option, type Command } from 'commander'
import type { DeadLetter } from '../../core/dead-letters.ts'
import { limits } from '../../core/limits.ts'
import { addClientOptions, positiveInteger, withSluice, type ClientOptions } from '../options.ts'
import { formatData, formatTime, messageJson, printJson, printJsonLine, printLine } from '../output.ts'

/**
 * `sluice dlq list|redrive <topic>`: the dead letters of a topic (in
 * `<topic>.dlq`, or `--dead-letter-topic`), over Sluice's deadLetters and
 * redrive. Listing only looks: nothing is leased or acknowledged, so the
 * dead letters stay for a redrive.
 */

interface DeadLetterOptions extends ClientOptions {
  readonly deadLetterTopic?: string
}

interface ListOptions extends DeadLetterOptions {
  readonly subscription?: string
  readonly max: number
}

interface RedriveCommandOptions extends DeadLetterOptions {
  readonly to?: string
  readonly rate?: number
  readonly max?: number
}

function deadLetterJson(letter: DeadLetter): Record<string, unknown> {
  return {
    ...messageJson(letter),
    originalTopic: letter.originalTopic,
    originalPartition: letter.originalPartition,
    originalOffset: letter.originalOffset,
    subscription: letter.subscription,
    attempts: letter.attempts,
    error: letter.error,
    deadLetteredAt: letter.deadLetteredAt,
  }
}

/** `p:o  from <topic> p:o  subscription=…  attempts=…  at <time>  error=…  data`. */
function deadLetterLine(letter: DeadLetter): string {
  return [
    `${letter.partition}:${letter.offset}`,
    `from ${letter.originalTopic} ${letter.originalPartition}:${letter.originalOffset}`,
    `subscription=${letter.subscription}`,
    `attempts=${letter.attempts}`,
    `at ${formatTime(letter.deadLetteredAt)}`,
    `error=${JSON.stringify(letter.error)}`,
    formatData(letter.data),
  ].join('  ')
}

function addDeadLetterTopic(command: Command): Command {
  return command.option('--dead-letter-topic <topic>', 'where the dead letters are (default <topic>.dlq)')
}

export function registerDlq(program: Command): void {
  const dlq = program
    .command('dlq')
    .description("a topic's dead letters: list them (without taking them) or redrive them")
    .helpCommand(false)

  addClientOptions(
    addDeadLetterTopic(
      dlq
        .command('list')
        .summary('print the dead letters of a topic, with why they died; nothing is acknowledged')
        .description(
          'print the dead letters of <topic> not yet redriven, oldest first per partition, with where they came from, their attempts and last error; only looks: they stay for a redrive',
        )
        .argument('<topic>', 'the topic the messages died on (not its .dlq)')
        .option('--subscription <name>', 'only the dead letters of this subscription of <topic>')
        .addOption(
          new Option('--max <n>', `the most dead letters to look at (up to ${limits.readMax})`)
            .default(100)
            .argParser(positiveInteger),
        ),
    ),
    'print each dead letter as a JSON line: the fields of consume --json plus originalTopic, originalPartition, originalOffset, subscription, attempts, error, deadLetteredAt',
  ).action(async (topic: string, options: ListOptions) => {
    const letters = await withSluice(options, (sluice) =>
      sluice.deadLetters(topic, {
        max: options.max,
        ...(options.deadLetterTopic === undefined ? {} : { deadLetterTopic: options.deadLetterTopic }),
      }),
    )
    const shown = letters.filter((l) => options.subscription === undefined || l.subscription === options.subscription)
    for (const letter of shown) {
      const printed = options.json === true ? printJsonLine(deadLetterJson(letter)) : printLine(deadLetterLine(letter))
      if (!printed) return
    }
    if (options.json !== true && shown.length === 0) printLine(`no dead letters for ${topic}`)
  })

  addClientOptions(
    addDeadLetterTopic(
      dlq
        .command('redrive')
        .summary('move dead letters back to the topic they came from')
        .description(
          'move the dead letters of <topic> back to the topic each came from (or --to), keeping id, key and headers, at most --rate per second, up to --max',
        )
        .argument('<topic>', 'the topic the messages died on (not its .dlq)')
        .option('--to <topic>', 'publish them here instead of where each came from')
        .addOption(
          new Option('--rate <n>', 'the most messages per second (default: as fast as possible)').argParser(
            positiveInteger,
          ),
        )
        .addOption(
          new Option('--max <n>', 'the most messages to move (default: all there are now)').argParser(positiveInteger),
        ),
    ),
    'print { "topic": topic, "moved": n } as JSON',
  ).action(async (topic: string, options: RedriveCommandOptions) => {
    const { moved } = await withSluice(options, (sluice) =>
      sluice.redrive(topic, {
        ...(options.to === undefined ? {} : { to: options.to }),
        ...(options.rate === undefined ? {} : { ratePerSecond: options.rate }),
        ...(options.max === undefined ? {} : { max: options.max }),
        ...(options.deadLetterTopic === undefined ? {} : { deadLetterTopic: options.deadLetterTopic }),
      }),
    )
    if (options.json === true) {
      printJson({ topic, moved })
      return
    }
    printLine(
      `moved ${moved} dead letter${moved === 1 ? '' : 's'} of ${topic} back${options.to === undefined ? '' : ` to ${options.to}`}`,
    )
  })
}
