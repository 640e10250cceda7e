import type { Command } from 'commander'
import { capabilityMeanings, capabilityNames, type Capabilities } from '../../core/capabilities.ts'
import { addClientOptions, withSluice, type ClientOptions } from '../options.ts'
import { printJson, printLine, table } from '../output.ts'

/** `sluice check`: what the runtime at --url can do, one row per capability. */

function has(value: Capabilities[keyof Capabilities]): string {
  if (typeof value === 'boolean') return value ? 'yes' : 'no'
  return value.length === 0 ? 'no' : value.join(', ')
}

function checkLines(url: string, capabilities: Capabilities): string[] {
  return [
    `runtime ${url}${url.startsWith('sluice:') ? " (a broker client: what its broker's runtime has)" : ''}`,
    '',
    ...table(
      ['CAPABILITY', 'HAS', 'MEANING'],
      capabilityNames.map((name) => [name, has(capabilities[name]), capabilityMeanings[name]]),
    ),
    '',
    'Asking for anything it does not have fails with UNSUPPORTED, naming the capability.',
  ]
}

export function registerCheck(program: Command): void {
  addClientOptions(
    program
      .command('check')
      .summary('what the runtime at --url can do: orderings, deliveries, durability, limits, …')
      .description(
        'print the capabilities of the runtime at --url, one row per capability: what it has and what that means; start from your requirements, then pick the runtime',
      ),
    'print the Capabilities as JSON: { durability: [...], orderings: [...], delayedDelivery: true, ... }',
  ).action(async (options: ClientOptions) => {
    const capabilities = await withSluice(options, (sluice) => Promise.resolve(sluice.capabilities()))
    if (options.json === true) {
      printJson(capabilities)
      return
    }
    for (const line of checkLines(options.url, capabilities)) printLine(line)
  })
}
