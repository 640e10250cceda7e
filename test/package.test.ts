import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { readFile, stat, writeFile, mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { tempDir } from './helpers/temp-dir.ts'

/**
 * What a new user gets from the package: `npm pack` of this tree (its prepack
 * builds dist/), installed into an empty app, imported by name and run as
 * `npx sluice`. Runtime dependencies come from the npm cache or registry.
 */

const root = fileURLToPath(new URL('..', import.meta.url))

interface Run {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs a command to its end (killed after `timeoutMs`); never rejects, the caller checks `code`. */
function run(command: string, args: string[], cwd: string, timeoutMs: number): Promise<Run> {
  // The npm_* variables of an enclosing `npm test` would steer the inner npm (its prefix, its lifecycle event).
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('npm_')))
  return new Promise((resolve) => {
    execFile(
      command,
      args,
      { cwd, env, timeout: timeoutMs, killSignal: 'SIGKILL', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err === null ? 0 : typeof err.code === 'number' ? err.code : null
        resolve({ code, stdout, stderr })
      },
    )
  })
}

function ok(what: string, result: Run): string {
  assert.equal(result.code, 0, `${what} exited ${result.code}:\n${result.stderr}\n${result.stdout}`)
  return result.stdout
}

test(
  'npm pack builds the package; installed in an empty app it imports as sluice and npx sluice runs',
  { timeout: 600_000 },
  async (t) => {
    const dir = await tempDir(t, 'sluice-package-')
    const packed = JSON.parse(
      ok('npm pack', await run('npm', ['pack', '--pack-destination', dir, '--json'], root, 300_000)),
    ) as { filename: string; files: { path: string }[] }[]
    const { filename, files } = packed[0]!
    const paths = files.map((f) => f.path)
    for (const path of [
      'package.json',
      'README.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/main.js',
      'dist/testing.js',
      'dist/core/conformance/suite.js',
      'dist/core/conformance/suite.d.ts',
    ])
      assert.ok(paths.includes(path), `${path} is in the package`)
    assert.deepEqual(
      paths.filter((p) => !p.startsWith('dist/') && p !== 'package.json' && p !== 'README.md'),
      [],
      'nothing but dist/, package.json and README.md',
    )
    assert.deepEqual(
      paths.filter((p) => /\.test\.|\.map$/.test(p)),
      [],
      'no tests, no source maps without their sources',
    )

    const app = join(dir, 'app')
    await mkdir(app)
    await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module' }))
    ok(
      'npm install',
      await run('npm', ['install', join(dir, filename), '--no-audit', '--no-fund', '--prefer-offline'], app, 300_000),
    )

    const bin = join(app, 'node_modules', 'sluice', 'dist', 'cli', 'main.js')
    assert.match(await readFile(bin, 'utf8'), /^#!\/usr\/bin\/env node\n/)
    assert.ok(((await stat(bin)).mode & 0o111) !== 0, 'the bin is executable once installed')

    await writeFile(
      join(app, 'check.js'),
      `import { open } from 'sluice'
const sluice = await open('memory:')
await sluice.createTopic('orders')
await sluice.publish('orders', { order: 1 })
const [message] = await sluice.read('orders', 0)
await sluice.close()
process.stdout.write(JSON.stringify(message.data))
`,
    )
    assert.equal(ok('the app', await run(process.execPath, ['check.js'], app, 60_000)), '{"order":1}')

    // The conformance suite, for drivers written elsewhere: importing it registers nothing until it is called.
    await writeFile(
      join(app, 'conformance.js'),
      `import { runConformance } from 'sluice/conformance'
process.stdout.write(typeof runConformance)
`,
    )
    assert.equal(
      ok('import sluice/conformance', await run(process.execPath, ['conformance.js'], app, 60_000)),
      'function',
    )

    const help = ok('npx sluice --help', await run('npx', ['sluice', '--help'], app, 120_000))
    assert.match(help, /^Usage: sluice /m)
    for (const verb of ['serve', 'publish', 'consume', 'dlq']) assert.match(help, new RegExp(`^  ${verb} `, 'm'))
    const version = JSON.parse(await readFile(join(root, 'package.json'), 'utf8')) as { version: string }
    assert.equal(
      ok('npx sluice --version', await run('npx', ['sluice', '--version'], app, 120_000)).trim(),
      version.version,
    )
  },
)
