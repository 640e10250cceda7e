import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

/**
 * Where a fault workload leaves its figures for `npm run torture` to collect:
 * `$SLUICE_FAULT_REPORT_DIR/<workload>.json`. Without the variable (a plain
 * `npm test`) the figures only go to the test's diagnostics.
 */
export async function reportFigures(workload: string, figures: Record<string, unknown>): Promise<void> {
  const dir = process.env['SLUICE_FAULT_REPORT_DIR']
  if (dir === undefined || dir === '') return
  await mkdir(dir, { recursive: true })
  await writeFile(join(dir, `${workload}.json`), JSON.stringify({ workload, ...figures }, null, 2) + '\n')
}

/** A count a test runs in its short form, raised by `npm run torture` through `name`. */
export function scale(name: string, short: number): number {
  const value = process.env[name]
  return value === undefined || value === '' ? short : Number(value)
}
