#!/usr/bin/env node
import { readFileSync } from 'node:fs'
import { Command, Option } from 'commander'
import { SluiceError } from '../core/errors.ts'
import { defaultDataDir } from '../open.ts'
import { registerCheck } from './commands/check.ts'
import { registerConsume } from './commands/consume.ts'
import { demo } from './commands/demo.ts'
import { registerDlq } from './commands/dlq.ts'
import { registerPublish } from './commands/publish.ts'
import type { ServeOptions } from './commands/serve.ts'
import { registerStats } from './commands/stats.ts'
import { registerTopics } from './commands/topics.ts'
import { integer } from './options.ts'
import { watchStdout } from './output.ts'

/** The `sluice` command line. Flags win over SLUICE_* environment variables, which win over defaults. */

const print = (line: string): void => void process.stdout.write(`${line}\n`)

// The same relative path from src/cli/main.ts and from dist/cli/main.js.
const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  version: string
}

const program = new Command()
  .name('sluice')
  .description('Sluice: a message queue for TypeScript. Embedded, as a broker, or on Redis.')
  .version(version, '-V, --version', 'print the version')
  .helpOption('-h, --help', 'show help for a command')
  .helpCommand('help [command]', 'show help for a command')
  .showHelpAfterError()
  .addHelpText(
    'after',
    `
The client verbs reach a broker at --url (env SLUICE_URL, default sluice://127.0.0.1:7420)
and take --json for machine output. Examples:
  sluice serve --data-dir ./data
  sluice topics create orders --partitions 4
  sluice publish orders '{"orderId":"o-1"}' --key user-17 --header source=cli
  cat orders.jsonl | sluice publish orders
  sluice consume orders --subscription audit --json
  sluice consume orders.dlq --subscription look --peek
  sluice dlq list orders --subscription audit
  sluice dlq redrive orders --rate 100
  sluice stats orders
  sluice check --url memory:`,
  )

watchStdout()
registerTopics(program)
registerPublish(program)
registerConsume(program)
registerStats(program)
registerDlq(program)
registerCheck(program)

program
  .command('serve')
  .description('run the broker: the binary protocol on --port, health checks over HTTP on --http-port')
  .addOption(
    new Option('--data-dir <dir>', "where messages are stored ('memory:' for none)")
      .env('SLUICE_DATA_DIR')
      .default(defaultDataDir),
  )
  .addOption(
    // No environment variable: SLUICE_URL is where the client verbs find a broker, not what a broker fronts.
    new Option(
      '--url <url>',
      'front another runtime instead: redis://host:6379 or redis+cluster://h1:7000,h2:7001',
    ).conflicts('dataDir'),
  )
  .addOption(
    new Option('--host <host>', 'interface to listen on (anything but loopback exposes an unauthenticated broker)')
      .env('SLUICE_HOST')
      .default('127.0.0.1'),
  )
  .addOption(new Option('--port <port>', 'protocol port').env('SLUICE_PORT').default(7420).argParser(integer))
  .addOption(new Option('--http-port <port>', 'HTTP port').env('SLUICE_HTTP_PORT').default(7421).argParser(integer))
  .addOption(
    new Option('--max-connections <n>', 'client connections at once')
      .env('SLUICE_MAX_CONNECTIONS')
      .default(10_000)
      .argParser(integer),
  )
  .addOption(
    new Option('--max-frame-bytes <n>', 'largest protocol frame a client may send')
      .env('SLUICE_MAX_FRAME_BYTES')
      .default(32 * 1024 * 1024)
      .argParser(integer),
  )
  .addOption(
    new Option('--disk-reserve-bytes <n>', 'free disk space kept back from publishes (0: none)')
      .env('SLUICE_DISK_RESERVE_BYTES')
      .default(64 * 1024 * 1024)
      .argParser(integer),
  )
  .addOption(
    new Option('--drain-timeout-ms <ms>', 'how long a graceful stop waits for in-flight requests')
      .env('SLUICE_DRAIN_TIMEOUT_MS')
      .default(10_000)
      .argParser(integer),
  )
  .action(async (options: ServeOptions) => {
    // Loaded only here: the broker (fastify and all) would slow every client verb's start.
    const { serve } = await import('./commands/serve.ts')
    await serve(options, print)
  })

program
  .command('demo')
  .description('publish and read a few messages on the embedded engine, printing what happens')
  .option('--url <url>', 'where the data lives', `file:${defaultDataDir}`)
  .action(async (options: { url: string }) => {
    await demo(options, print)
  })

try {
  await program.parseAsync(process.argv)
} catch (err) {
  if (err instanceof SluiceError) {
    process.stderr.write(`sluice: ${err.code}: ${err.message}\n`)
    process.exit(1)
  }
  throw err
}
