// `npm run torture`: the long form of every fault workload, one after another,
// with a results file and a summary table. `npm run torture -- kill-broker soak`
// runs only those (their results replace the same steps in latest.json).
// The short forms of the same tests run inside `npm test`.
import { spawn } from 'node:child_process'
import { mkdtemp, readdir, readFile, rm, writeFile, mkdir } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

interface Step {
  readonly name: string
  readonly what: string
  /** A test file run with node's test runner, or a script run as is. */
  readonly test?: string
  readonly script?: string
  readonly env: Record<string, string>
}

const steps: Step[] = [
  {
    name: 'kill-embedded',
    what: 'kill -9 of a process publishing on the embedded engine (fsync), restart, read back',
    test: 'test/fault/kill-embedded.test.ts',
    env: { SLUICE_CRASH_KILLS: '200' },
  },
  {
    name: 'kill-broker',
    what: 'kill -9 of the broker under a producer and a consumer process, restart, drain',
    test: 'test/fault/kill-broker.test.ts',
    env: { SLUICE_BROKER_KILLS: '200' },
  },
  {
    name: 'kill-embedded-small-segments',
    what: 'kill-embedded with 1 KiB segments (the smallest): retries and repeated ids are recognised across sealed segments',
    test: 'test/fault/kill-embedded.test.ts',
    env: { SLUICE_CRASH_KILLS: '100', SLUICE_SEGMENT_BYTES: '1024' },
  },
  {
    name: 'kill-broker-small-segments',
    what: 'kill-broker with 1 KiB segments (the smallest): a retry after a restart finds its first copy in a sealed segment',
    test: 'test/fault/kill-broker.test.ts',
    env: { SLUICE_BROKER_KILLS: '100', SLUICE_SEGMENT_BYTES: '1024' },
  },
  {
    name: 'power-loss',
    what: 'power cuts at random file operations, unsynced sectors kept, dropped or torn (fsync and interval)',
    test: 'test/fault/power-loss.test.ts',
    env: { SLUICE_POWER_SEEDS: '5000' },
  },
  {
    name: 'storage-faults',
    what: 'a real full disk (tmpfs), injected ENOSPC and fsync errors, a bit flipped at every byte of the tail',
    test: 'test/fault/storage-faults.test.ts',
    env: {},
  },
  {
    name: 'lease-model',
    what: 'fast-check model of publish, lease, ack, nack, extend, expiry, restart under a fake clock',
    test: 'test/fault/lease-model.test.ts',
    env: { SLUICE_LEASE_RUNS: '2000' },
  },
  {
    name: 'hostile-clients',
    what: 'garbage, 4 GiB length fields, connection floods, stalled and never-reading clients beside a good one',
    script: 'torture/hostile-clients.ts',
    env: { SLUICE_HOSTILE_MS: '120000' },
  },
  {
    name: 'soak',
    what: 'mixed load with connection churn and lease expiries; heap, RSS and descriptors over time',
    script: 'torture/soak.ts',
    env: { SLUICE_SOAK_MS: '1200000' },
  },
]

interface StepResult {
  readonly step: string
  readonly what: string
  readonly passed: boolean
  readonly exitCode: number | null
  readonly ms: number
  readonly env: Record<string, string>
  /** What the workload reported (report.ts), by workload name. */
  readonly figures: Record<string, unknown>
}

const root = fileURLToPath(new URL('..', import.meta.url))
const resultsDir = join(root, 'torture', 'results')

function run(step: Step, reportDir: string): Promise<number | null> {
  const args = step.test
    ? ['--import', 'tsx', '--test', '--test-reporter=spec', '--test-timeout=7200000', step.test]
    : ['--import', 'tsx', step.script!]
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      stdio: 'inherit',
      // A knob set by the caller (e.g. SLUICE_SOAK_MS=1200000) wins over the step's default.
      env: { ...step.env, ...process.env, SLUICE_FAULT_REPORT_DIR: reportDir },
    })
    child.on('exit', (code) => resolve(code))
  })
}

async function main(): Promise<void> {
  const only = process.argv.slice(2)
  const unknown = only.filter((name) => !steps.some((s) => s.name === name))
  if (unknown.length > 0) {
    console.error(`unknown step ${unknown.join(', ')}; steps: ${steps.map((s) => s.name).join(', ')}`)
    process.exit(2)
  }
  const chosen = only.length === 0 ? steps : steps.filter((s) => only.includes(s.name))
  const results: StepResult[] = []
  for (const step of chosen) {
    console.log(
      `\n=== ${step.name}: ${step.what} (${Object.entries(step.env)
        .map(([k, v]) => `${k}=${v}`)
        .join(' ')})`,
    )
    const reportDir = await mkdtemp(join(tmpdir(), 'sluice-torture-'))
    const started = Date.now()
    const exitCode = await run(step, reportDir)
    const figures: Record<string, unknown> = {}
    for (const name of await readdir(reportDir)) {
      figures[name.replace(/\.json$/, '')] = JSON.parse(await readFile(join(reportDir, name), 'utf8')) as unknown
    }
    await rm(reportDir, { recursive: true, force: true })
    results.push({
      step: step.name,
      what: step.what,
      passed: exitCode === 0,
      exitCode,
      ms: Date.now() - started,
      env: step.env,
      figures,
    })
  }

  await mkdir(resultsDir, { recursive: true })
  const latestPath = join(resultsDir, 'latest.json')
  let earlier: StepResult[] = []
  try {
    earlier = (JSON.parse(await readFile(latestPath, 'utf8')) as { steps: StepResult[] }).steps
  } catch {
    // First run.
  }
  const merged = steps
    .map((s) => results.find((r) => r.step === s.name) ?? earlier.find((r) => r.step === s.name))
    .filter((r): r is StepResult => r !== undefined)
  const file = {
    ranAt: new Date().toISOString(),
    machine: {
      cpus: cpus().length,
      cpu: cpus()[0]?.model,
      memoryGiB: Math.round(totalmem() / 2 ** 30),
      node: process.version,
    },
    steps: merged,
  }
  const text = JSON.stringify(file, null, 2) + '\n'
  await writeFile(latestPath, text)
  await writeFile(join(resultsDir, `torture-${file.ranAt.replace(/[:.]/g, '-')}.json`), text)

  console.log('\n| step | passed | minutes | figures |\n|---|---|---|---|')
  for (const r of merged)
    console.log(`| ${r.step} | ${r.passed ? 'yes' : 'NO'} | ${(r.ms / 60_000).toFixed(1)} | ${headline(r)} |`)
  console.log(`\nresults: ${latestPath}`)
  if (results.some((r) => !r.passed)) process.exit(1)
}

const headlineKeys = [
  'kills',
  'seeds',
  'runs',
  'commands',
  'durationMs',
  'acknowledged',
  'lost',
  'unexpected',
  'storedTwice',
  'duplicates',
  'orderViolations',
  'offsetGaps',
  'lostInInterval',
  'heapSlopeBytesPerMin',
  'rssSlopeBytesPerMin',
  'fdSlopePerMin',
  'rssMax',
]

/** The figures a reader looks for first, per workload (one level of nesting, e.g. the broker test's `log`). */
function headline(r: StepResult): string {
  const pick = (f: Record<string, unknown>, prefix: string): string[] =>
    headlineKeys.filter((k) => typeof f[k] === 'number').map((k) => `${prefix}${k} ${String(f[k])}`)
  const parts: string[] = []
  for (const [name, value] of Object.entries(r.figures)) {
    const f = value as Record<string, unknown>
    const fields = pick(f, '')
    for (const [key, inner] of Object.entries(f))
      if (inner !== null && typeof inner === 'object' && !Array.isArray(inner))
        fields.push(...pick(inner as Record<string, unknown>, `${key}.`))
    parts.push(`${name}: ${fields.join(', ')}`)
  }
  return parts.join('; ')
}

await main()
