/**
 * The child processes of run.ts: each one's output is passed on line by line,
 * prefixed with its name, and none outlives run.ts: stopAll on the way out,
 * killAll as a last resort on exit, and exit-with-parent.ts when run.ts is
 * killed with no chance to do either.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { createInterface } from 'node:readline'

export interface Exit {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
}

export interface Service {
  readonly name: string
  /** Counts the starts of services of this name: 1 for the first, 2 after a restart. */
  readonly generation: number
  readonly process: ChildProcess
  /** Resolves once the process is gone and its output read. */
  readonly exited: Promise<Exit>
  /** Writes one line to the child's stdin. */
  writeLine(line: string): void
  /** Sends `signal` and waits for the exit; SIGKILL after `graceMs`. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<Exit>
}

export interface StartOptions {
  readonly cwd: string
}

/** Makes a child exit when run.ts is gone; it needs the IPC channel every child gets. */
const exitWithParent = new URL('exit-with-parent.ts', import.meta.url).href

type LineListener = (service: Service, line: string) => void

function describeExit(exit: Exit): string {
  return exit.signal === null ? `exit code ${exit.code}` : `signal ${exit.signal}`
}

export class Processes {
  private readonly live = new Set<Service>()
  private readonly starts = new Map<string, number>()
  private readonly listeners = new Set<LineListener>()
  private readonly changed = new Set<() => void>()
  /** Set when a child exits without having been asked to: every wait fails with it. */
  private failure: Error | null = null

  constructor(private readonly print: (line: string) => void) {}

  /** Runs `node --import tsx <script> ...args`. */
  start(name: string, script: string, args: readonly string[], options: StartOptions): Service {
    const child = spawn(process.execPath, ['--import', 'tsx', '--import', exitWithParent, script, ...args], {
      cwd: options.cwd,
      stdio: ['pipe', 'pipe', 'pipe', 'ipc'],
    })
    const generation = (this.starts.get(name) ?? 0) + 1
    this.starts.set(name, generation)
    let stopping = false
    let running = true
    const exited = new Promise<Exit>((resolve) => {
      child.once('close', (code, signal) => {
        running = false
        this.live.delete(service)
        if (!stopping) this.fail(new Error(`${name} exited unexpectedly (${describeExit({ code, signal })})`))
        resolve({ code, signal })
        this.notify()
      })
    })
    child.once('error', (err) => this.fail(new Error(`could not run ${name}: ${err.message}`)))
    child.stdin!.on('error', () => undefined) // a child that is gone does not read its stdin; its exit tells why
    const service: Service = {
      name,
      generation,
      process: child,
      exited,
      writeLine: (line) => void child.stdin!.write(`${line}\n`),
      stop: async (signal = 'SIGTERM', graceMs = 10_000) => {
        stopping = true
        if (!running) return exited
        child.kill(signal)
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs)
        try {
          return await exited
        } finally {
          clearTimeout(timer)
        }
      },
    }
    this.live.add(service)
    const prefix = `[${name}]`
    const pass = (line: string): void => {
      this.print(line.startsWith(prefix) ? line : `${prefix} ${line}`)
      for (const listener of this.listeners) listener(service, line)
      this.notify()
    }
    createInterface({ input: child.stdout! }).on('line', pass)
    createInterface({ input: child.stderr! }).on('line', pass)
    return service
  }

  onLine(listener: LineListener): void {
    this.listeners.add(listener)
  }

  /**
   * Resolves once `done()` holds, checked after every line and exit; rejects
   * after `timeoutMs` with `progress()`, when a child exits unexpectedly, or
   * when `signal` aborts.
   */
  until(
    what: string,
    done: () => boolean,
    options: { timeoutMs: number; progress: () => string; signal: AbortSignal },
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      const finish = (err: Error | null): void => {
        clearTimeout(timer)
        this.changed.delete(check)
        options.signal.removeEventListener('abort', aborted)
        if (err === null) resolve()
        else reject(err)
      }
      const check = (): void => {
        if (this.failure !== null) finish(new Error(`${this.failure.message} while waiting for ${what}`))
        else if (done()) finish(null)
      }
      const aborted = (): void => finish(options.signal.reason as Error)
      const timer = setTimeout(
        () =>
          finish(
            new Error(`timed out after ${options.timeoutMs / 1000} s waiting for ${what} (${options.progress()})`),
          ),
        options.timeoutMs,
      )
      options.signal.addEventListener('abort', aborted, { once: true })
      this.changed.add(check)
      check()
    })
  }

  /** Stops the running children, last started first, each with SIGTERM and then SIGKILL after `graceMs`. */
  async stopAll(graceMs = 10_000): Promise<void> {
    for (const service of [...this.live].reverse()) {
      const exit = await service.stop('SIGTERM', graceMs)
      if (exit.code !== 0) this.print(`[run] ${service.name} stopped with ${describeExit(exit)}`)
    }
  }

  /** SIGKILLs whatever is still running; synchronous, for `process.on('exit')`. */
  killAll(): void {
    for (const service of this.live) service.process.kill('SIGKILL')
  }

  private fail(err: Error): void {
    this.failure ??= err
    this.notify()
  }

  private notify(): void {
    for (const check of [...this.changed]) check()
  }
}
