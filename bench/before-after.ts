// npm run bench:before-after -- <commit> [rounds]: this tree against an older commit, interleaved in one run, so
// that a redesign can show it costs nothing. Each round runs bench/before-after-probe.ts once in each tree (in a
// process of its own, the older tree first in even rounds), and each figure's ratio is given per round: the
// machine's speed drifts between rounds more than within one.
import { execFileSync } from 'node:child_process'
import { copyFileSync, mkdtempSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

type Figures = Record<'embedded' | 'broker', Record<string, number>>

const [commit, roundsArg] = process.argv.slice(2)
if (commit === undefined) throw new Error('usage: npm run bench:before-after -- <commit> [rounds]')
const rounds = Number(roundsArg ?? 5)
const here = join(import.meta.dirname, '..')
const older = join(mkdtempSync(join(tmpdir(), 'sluice-older-')), 'tree')
const git = (...args: string[]): string => execFileSync('git', args, { cwd: here, encoding: 'utf8' }).trim()
git('worktree', 'add', '--detach', older, commit)
try {
  symlinkSync(join(here, 'node_modules'), join(older, 'node_modules'))
  copyFileSync(join(here, 'bench/before-after-probe.ts'), join(older, 'bench/before-after-probe.ts'))
  const trees: [string, string][] = [
    [`before (${git('rev-parse', '--short', commit)})`, older],
    [`after (${git('rev-parse', '--short', 'HEAD')})`, here],
  ]
  const results = new Map<string, Figures[]>(trees.map(([name]) => [name, []]))
  for (let round = 0; round < rounds; round++)
    for (const [name, dir] of round % 2 === 0 ? trees : [...trees].reverse()) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', join(dir, 'bench/before-after-probe.ts')], {
        cwd: dir,
        encoding: 'utf8',
      })
      const figures = JSON.parse(out.trim().split('\n').at(-1)!) as Figures
      results.get(name)!.push(figures)
      process.stdout.write(
        `round ${round + 1} ${name}: ${JSON.stringify(figures, (_, v: unknown) => (typeof v === 'number' ? Math.round(v) : v))}\n`,
      )
    }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!
  const [before, after] = trees.map(([name]) => results.get(name)!) as [Figures[], Figures[]]
  process.stdout.write(
    `\n| runtime | figure | before msgs/s | after msgs/s | after / before, per round | median |\n|---|---|---|---|---|---|\n`,
  )
  for (const side of ['embedded', 'broker'] as const)
    for (const figure of Object.keys(before[0]![side])) {
      const ratios = after.map((a, i) => a[side][figure]! / before[i]![side][figure]!)
      process.stdout.write(
        `| ${side} | ${figure} | ${Math.round(median(before.map((b) => b[side][figure]!)))} | ${Math.round(median(after.map((a) => a[side][figure]!)))} | ${ratios.map((r) => r.toFixed(2)).join(' ')} | ${median(ratios).toFixed(2)} |\n`,
      )
    }
} finally {
  git('worktree', 'remove', '--force', older)
}
