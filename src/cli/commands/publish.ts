import { Option, type Command } from 'commander'
import { createInterface } from 'node:readline'
import type { Sluice } from '../../core/sluice.ts'
import type { PublishOptions, Receipt } from '../../core/types.ts'
import { addClientOptions, header, integer, withSluice, type ClientOptions } from '../options.ts'
import { printJsonLine, printLine } from '../output.ts'

/** `sluice publish <topic> [message]`: one message from the argument, or one per line of stdin. */

interface PublishCommandOptions extends ClientOptions {
  readonly key?: string
  readonly header?: Record<string, string>
  readonly delayMs?: number
}

/** Lines published in one batch at most, and their bytes at most (roughly). */
const batchMessages = 1000
const batchBytes = 1024 * 1024
/** Lines read ahead of the batch being published before reading stdin pauses. */
const readAheadLines = 4 * batchMessages

/** A message given as text: the JSON value when it parses as JSON, otherwise the string itself. */
export function parseMessage(text: string): unknown {
  try {
    return JSON.parse(text) as unknown
  } catch {
    return text
  }
}

function publishOptions(options: PublishCommandOptions): PublishOptions {
  return {
    ...(options.key === undefined ? {} : { key: options.key }),
    ...(options.header === undefined ? {} : { headers: options.header }),
    ...(options.delayMs === undefined ? {} : { delayMs: options.delayMs }),
  }
}

function printReceipt(receipt: Receipt, json: boolean): void {
  if (json) printJsonLine(receipt)
  else
    printLine(
      `partition ${receipt.partition}  offset ${receipt.offset}  id ${receipt.id}${receipt.duplicate ? '  (duplicate: stored before)' : ''}`,
    )
}

/**
 * Publishes every non-empty line of `input`, in order, in batches: each batch
 * takes the lines that arrived while the previous one was being stored, so
 * a fast pipe makes large batches and a slow one (`tail -f`) sends each line
 * at once. Resolves with the number published.
 */
export async function publishLines(
  sluice: Sluice,
  topic: string,
  input: NodeJS.ReadableStream,
  options: PublishOptions,
  onReceipts: (receipts: readonly Receipt[]) => void,
): Promise<number> {
  const lines = createInterface({ input, crlfDelay: Infinity })
  const pending: string[] = []
  /** Set from the readline events: whether the input ended, and how it failed. */
  const state: { ended: boolean; failure: { err: unknown } | null } = { ended: false, failure: null }
  let wake: (() => void) | null = null
  const notify = (): void => {
    const w = wake
    wake = null
    w?.()
  }
  lines.on('line', (line) => {
    if (line.length === 0) return
    pending.push(line)
    if (pending.length >= readAheadLines) lines.pause()
    notify()
  })
  lines.on('close', () => {
    state.ended = true
    notify()
  })
  lines.on('error', (err) => {
    state.failure = { err }
    notify()
  })
  let published = 0
  try {
    while (true) {
      if (state.failure !== null) throw state.failure.err
      if (pending.length === 0) {
        if (state.ended) return published
        await new Promise<void>((resolve) => (wake = resolve))
        continue
      }
      let count = 0
      let bytes = 0
      while (count < pending.length && count < batchMessages && bytes < batchBytes) bytes += pending[count++]!.length
      const batch = pending.splice(0, count)
      if (pending.length < readAheadLines / 2) lines.resume()
      const receipts = await sluice.publishBatch(
        topic,
        batch.map((line) => ({ ...options, data: parseMessage(line) })),
      )
      published += receipts.length
      onReceipts(receipts)
    }
  } finally {
    lines.close()
  }
}

export function registerPublish(program: Command): void {
  addClientOptions(
    program
      .command('publish')
      .summary('publish a message, or one per line of stdin')
      .description(
        'publish a message, or without one every line of stdin (one message per line, empty lines skipped); text that parses as JSON is sent as JSON, anything else as a string',
      )
      .argument('<topic>', 'the topic to publish to')
      .argument('[message]', 'the message; without it, stdin is read')
      .option('--key <key>', 'the message key: picks the partition and orders messages of one key')
      .addOption(new Option('--header <name=value>', 'a header; repeat for more').argParser(header))
      .addOption(
        new Option('--delay-ms <ms>', 'keep the message invisible to subscriptions for this long').argParser(integer),
      ),
    'print each receipt as a JSON line: { id, partition, offset, duplicate }',
  ).action(async (topic: string, message: string | undefined, options: PublishCommandOptions) => {
    const json = options.json === true
    const perMessage = publishOptions(options)
    await withSluice(options, async (sluice) => {
      if (message !== undefined) {
        printReceipt(await sluice.publish(topic, parseMessage(message), perMessage), json)
        return
      }
      if (process.stdin.isTTY) process.stderr.write('reading messages from stdin, one per line; end with Ctrl-D\n')
      const started = performance.now()
      const count = await publishLines(sluice, topic, process.stdin, perMessage, (receipts) => {
        for (const receipt of receipts) printReceipt(receipt, json)
      })
      if (!json && process.stderr.isTTY) {
        const ms = Math.max(1, performance.now() - started)
        process.stderr.write(
          `published ${count} message${count === 1 ? '' : 's'} to ${topic} in ${Math.round(ms)} ms\n`,
        )
      }
    })
  })
}
