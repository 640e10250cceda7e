import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'

/** A child process whose stdout lines can be awaited. */
export interface Proc {
  readonly child: ChildProcess
  line(pattern: RegExp, timeoutMs?: number): Promise<string>
  stop(): Promise<void>
}

export function start(script: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, ...env },
  })
  const lines: string[] = []
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = []
  createInterface({ input: child.stdout }).on('line', (line) => {
    lines.push(line)
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return {
    child,
    line(pattern, timeoutMs = 300_000) {
      const seen = lines.find((l) => pattern.test(l))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`${script}: no line matching ${String(pattern)} within ${timeoutMs} ms`)),
          timeoutMs,
        )
        waiters.push({ pattern, resolve: (l) => (clearTimeout(timer), resolve(l)) })
        void exited.then(() => reject(new Error(`${script} exited before printing ${String(pattern)}`)))
      })
    },
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    },
  }
}

export function script(relative: string): string {
  return fileURLToPath(new URL(`../${relative}`, import.meta.url))
}

// One free-port helper for tests and the bench.
export { freePort } from '../../test/helpers/ports.ts'
