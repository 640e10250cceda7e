import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import type { TestContext } from 'node:test'
import { cleanup } from './cleanup.ts'

/** A TypeScript script run as a real child process, its stdout read line by line. */
export interface Child {
  readonly process: ChildProcess
  readonly pid: number
  /** Complete lines the child has written to stdout so far. */
  readonly lines: string[]
  /** Resolves with the first line matching `pattern` (rejects if the child exits first). */
  waitForLine(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** Sends an IPC message and resolves with the child's answer. */
  ask(message: unknown): Promise<unknown>
  /** Resolves with the exit code (or the signal) once the child is gone. */
  readonly exited: Promise<number | NodeJS.Signals>
  kill9(): Promise<void>
}

export function fixture(name: string): string {
  return fileURLToPath(new URL(`../fixtures/${name}`, import.meta.url))
}

/** Runs `node --import tsx <script> ...args`; killed when the test ends. */
export function runChild(t: TestContext | null, script: string, args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const child = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    stdio: ['pipe', 'pipe', 'inherit', 'ipc'],
    env: { ...process.env, ...env },
  })
  const lines: string[] = []
  const waiters: { pattern: RegExp; resolve: (line: string) => void }[] = []
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(line)
    for (const w of [...waiters]) {
      if (w.pattern.test(line)) {
        waiters.splice(waiters.indexOf(w), 1)
        w.resolve(line)
      }
    }
  })
  const exited = new Promise<number | NodeJS.Signals>((resolve) => {
    child.on('exit', (code, signal) => resolve(code ?? signal ?? 'SIGKILL'))
  })
  const handle: Child = {
    process: child,
    pid: child.pid!,
    lines,
    exited,
    waitForLine(pattern, timeoutMs = 30_000) {
      const seen = lines.find((l) => pattern.test(l))
      if (seen !== undefined) return Promise.resolve(seen)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`child ${child.pid} wrote no line matching ${String(pattern)} in ${timeoutMs} ms`)),
          timeoutMs,
        )
        waiters.push({ pattern, resolve: (line) => (clearTimeout(timer), resolve(line)) })
        void exited.then((how) => {
          clearTimeout(timer)
          reject(new Error(`child ${child.pid} exited (${how}) before writing a line matching ${String(pattern)}`))
        })
      })
    },
    ask(message) {
      return new Promise((resolve, reject) => {
        child.once('message', resolve)
        child.send(message as never, (err) => {
          if (err !== null) reject(err)
        })
      })
    },
    async kill9() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
      await exited
    },
  }
  if (t !== null) cleanup(t, () => handle.kill9())
  return handle
}
