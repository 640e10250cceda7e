import { Option, type Command } from 'commander'
import { asSluiceError, ErrorCode, hasCode } from '../../core/errors.ts'
import type { Message } from '../../core/message.ts'
import { Ordering, StartAt } from '../../core/types.ts'
import { addClientOptions, integer, positiveInteger, withSluice, type ClientOptions } from '../options.ts'
import { messageJson, messageLine, onStdoutGone, printJsonLine, printLine, warn } from '../output.ts'

/**
 * `sluice consume <topic> --subscription <name>`: prints messages as they
 * come and acknowledges each once printed (at-least-once: a message printed
 * just before the process dies may come again). Stops after `--count`
 * messages, on SIGINT/SIGTERM, or when stdout's reader goes away: the
 * message being printed is finished and acknowledged, prefetched ones go
 * back, then it exits 0. A second signal exits at once with 1.
 *
 * With `--peek` it only looks: it prints up to `--count` (default 100)
 * messages the subscription has not acknowledged and exits, leasing and
 * acknowledging nothing, so no attempt is counted and nothing is lost (the
 * way to look into a dead-letter topic; see also `sluice dlq list`).
 */

interface ConsumeCommandOptions extends ClientOptions {
  readonly subscription: string
  readonly from: StartAt
  readonly count?: number
  readonly ordering?: Ordering
  readonly prefetch: number
  readonly peek?: boolean
}

/** How many messages `--peek` shows without `--count`. */
const defaultPeekCount = 100

/** `--peek`: prints what the subscription has not acknowledged, touching nothing. */
async function peek(topic: string, options: ConsumeCommandOptions): Promise<void> {
  const messages = await withSluice(options, (sluice) =>
    sluice.peek(topic, options.subscription, { max: options.count ?? defaultPeekCount }),
  )
  for (const message of messages) {
    const shown = options.json === true ? printJsonLine(messageJson(message)) : printLine(messageLine(message))
    if (!shown) return
  }
}

const signals = ['SIGINT', 'SIGTERM'] as const
/** Acknowledgements sent and not yet answered, at most. */
const maxAcksInFlight = 1000
const noop = (): void => undefined

/**
 * Acknowledgements in flight: each is sent as soon as its message is
 * printed, without waiting for the answer, so printing keeps pace with the
 * stream. A refused one (LEASE_LOST: the message will come again) is a
 * warning; any other failure is thrown by the next call.
 */
class PendingAcks {
  private readonly pending = new Set<Promise<void>>()
  private failure: { err: unknown } | null = null

  constructor(private readonly max: number) {}

  /** Sends the acknowledgement; resolves when fewer than `max` are unanswered. */
  async add(message: Message): Promise<void> {
    this.check()
    const ack: Promise<void> = message
      .ack()
      .then(noop, (err: unknown) => {
        if (hasCode(err, ErrorCode.LeaseLost)) warn(`${err.code}: ${err.message}`)
        else this.failure ??= { err }
      })
      .finally(() => this.pending.delete(ack))
    this.pending.add(ack)
    while (this.pending.size >= this.max) await Promise.race(this.pending)
    this.check()
  }

  /** Resolves once every acknowledgement sent is answered. */
  async settle(): Promise<void> {
    await Promise.all(this.pending)
    this.check()
  }

  private check(): void {
    if (this.failure !== null) throw this.failure.err
  }
}

export function registerConsume(program: Command): void {
  addClientOptions(
    program
      .command('consume')
      .summary('print and acknowledge the messages of a subscription')
      .description(
        'print the messages of a subscription as they arrive, acknowledging each once printed; runs until --count messages or Ctrl-C',
      )
      .argument('<topic>', 'the topic to consume')
      .requiredOption(
        '--subscription <name>',
        'the subscription (created on first use): every subscription gets every message, consumers of one share them',
      )
      .addOption(
        new Option('--from <where>', 'where a new subscription starts; an existing one goes on from where it is')
          .choices(Object.values(StartAt))
          .default(StartAt.Earliest),
      )
      .addOption(
        new Option(
          '--count <n>',
          `exit after this many messages (with --peek: the most shown, default ${defaultPeekCount})`,
        ).argParser(positiveInteger),
      )
      .option(
        '--peek',
        'only look: print the messages the subscription has not acknowledged and exit, leasing and acknowledging none (no attempt counted, nothing lost)',
      )
      .addOption(
        new Option('--prefetch <n>', 'messages leased ahead of the one being printed (given back on exit)')
          .default(100)
          .argParser(integer),
      )
      .addOption(
        new Option(
          '--ordering <level>',
          'the order messages come in; it belongs to the subscription, so its other live consumers must use the same; default key',
        ).choices(Object.values(Ordering)),
      ),
    'print each message as a JSON line: { id, topic, key, partition, offset, timestamp, attempt, headers, dataEncoding, data }, with data base64 when dataEncoding is base64',
  ).action(async (topic: string, options: ConsumeCommandOptions) => {
    if (options.peek === true) {
      await peek(topic, options)
      return
    }
    if (topic.endsWith('.dlq'))
      warn(
        `consume acknowledges what it prints, and acknowledged dead letters may be deleted before anyone redrives them; to look without taking them, use --peek or 'sluice dlq list ${topic.slice(0, -'.dlq'.length)}'`,
      )
    const json = options.json === true
    const acks = new PendingAcks(maxAcksInFlight)
    /** Aborting it closes the subscription. */
    const abort = new AbortController()
    /** `busy` while a message is being printed: a signal lets that finish first. */
    const state = { stopping: false, busy: false }
    const stop = (): void => {
      if (state.stopping) process.exit(1)
      state.stopping = true
      // Waiting for a message: close once the acknowledgements sent are answered.
      if (!state.busy)
        void acks
          .settle()
          .then(noop, noop)
          .finally(() => abort.abort())
    }
    for (const signal of signals) process.on(signal, stop)
    onStdoutGone(() => {
      if (!state.stopping) stop()
    })
    try {
      await withSluice(
        options,
        async (sluice) => {
          const subscription = await sluice.subscribe(topic, options.subscription, {
            startAt: options.from,
            prefetch: options.prefetch,
            signal: abort.signal,
            ...(options.ordering === undefined ? {} : { ordering: options.ordering }),
          })
          let received = 0
          for await (const message of subscription) {
            state.busy = true
            const shown = json ? printJsonLine(messageJson(message)) : printLine(messageLine(message))
            if (!shown) {
              // Nobody reads stdout any more: this message stays unacknowledged and goes back on close.
              await acks.settle()
              break
            }
            await acks.add(message)
            received++
            if (state.stopping || received === options.count) {
              await acks.settle()
              // Leaving the loop closes the subscription: prefetched messages go back.
              break
            }
            state.busy = false
          }
          await acks.settle()
        },
        (err) => {
          const e = asSluiceError(err)
          warn(`${e.code}: ${e.message}`)
        },
      )
    } finally {
      for (const signal of signals) process.off(signal, stop)
      onStdoutGone(null)
    }
  })
}
