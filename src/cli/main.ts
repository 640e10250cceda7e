#!/usr/bin/env node
import { Command } from 'commander'
import { SluiceError } from '../core/errors.ts'
import { defaultDataDir } from '../open.ts'
import { demo } from './commands/demo.ts'

/** The `sluice` command line. */
const program = new Command()
  .name('sluice')
  .description('Sluice: a message queue for TypeScript. Embedded, as a broker, or on Redis and NATS.')
  .showHelpAfterError()

program
  .command('demo')
  .description('publish and read a few messages on the embedded engine, printing what happens')
  .option('--url <url>', 'where the data lives', process.env['SLUICE_URL'] ?? `file:${defaultDataDir}`)
  .action(async (options: { url: string }) => {
    await demo(options, (line) => process.stdout.write(`${line}\n`))
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
