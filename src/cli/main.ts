#!/usr/bin/env node
import { Command, InvalidArgumentError, Option } from 'commander'
import { SluiceError } from '../core/errors.ts'
import { defaultDataDir } from '../open.ts'
import { demo } from './commands/demo.ts'
import { serve } from './commands/serve.ts'

/** The `sluice` command line. Flags win over SLUICE_* environment variables, which win over defaults. */

function integer(value: string): number {
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidArgumentError('expected a non-negative integer')
  return n
}

const print = (line: string): void => void process.stdout.write(`${line}\n`)

const program = new Command()
  .name('sluice')
  .description('Sluice: a message queue for TypeScript. Embedded, as a broker, or on Redis and NATS.')
  .showHelpAfterError()

program
  .command('serve')
  .description('run the broker: the binary protocol on --port, health checks over HTTP on --http-port')
  .addOption(
    new Option('--data-dir <dir>', "where messages are stored ('memory:' for none)")
      .env('SLUICE_DATA_DIR')
      .default(defaultDataDir),
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
    new Option('--drain-timeout-ms <ms>', 'how long a graceful stop waits for in-flight requests')
      .env('SLUICE_DRAIN_TIMEOUT_MS')
      .default(10_000)
      .argParser(integer),
  )
  .action(async (options: Parameters<typeof serve>[0]) => {
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
