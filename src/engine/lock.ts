import * as fs from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ErrorCode, sluiceError } from '../core/errors.ts'

/**
 * One process owns a data directory. The owner holds `LOCK`, a file naming
 * its pid and the pid's start time (so a recycled pid is not mistaken for the
 * owner). The file is written completely before it appears (hard link of a
 * finished temp file), so a reader never sees half a lock. A lock whose
 * process is gone is stale: it is broken under `LOCK.break`, so that two
 * processes starting at once cannot both take it.
 */

interface Holder {
  readonly pid: number
  readonly startTime: string
  readonly hostname: string
  readonly since: string
}

/** The kernel's start time of a process (field 22 of /proc/<pid>/stat), or '' where there is no /proc. */
function processStartTime(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    // The command name (field 2) may hold spaces and parentheses; fields after it follow the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return fields[19] ?? ''
  } catch {
    return ''
  }
}

function isAlive(holder: Holder): boolean {
  try {
    process.kill(holder.pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const startTime = processStartTime(holder.pid)
  return startTime === '' || holder.startTime === '' || startTime === holder.startTime
}

async function readHolder(path: string): Promise<Holder | undefined> {
  try {
    return JSON.parse(await fs.readFile(path, 'utf8')) as Holder
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    // Unreadable content: not written by this code; treat as held by nobody alive.
    return { pid: -1, startTime: '', hostname: '', since: '' }
  }
}

/** Creates `path` holding `content`, failing with EEXIST if it exists; never visible half-written. */
async function createComplete(path: string, content: string): Promise<void> {
  const tmp = `${path}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`
  await fs.writeFile(tmp, content)
  try {
    await fs.link(tmp, path)
  } finally {
    await fs.unlink(tmp).catch(() => undefined)
  }
}

export class DirLock {
  private released = false

  private constructor(
    private readonly path: string,
    private readonly content: string,
  ) {}

  /** Takes the lock of `dir` or throws LOCKED naming the holder. */
  static async acquire(dir: string): Promise<DirLock> {
    const path = join(dir, 'LOCK')
    const me: Holder = {
      pid: process.pid,
      startTime: processStartTime(process.pid),
      hostname: (await import('node:os')).hostname(),
      since: new Date().toISOString(),
    }
    const content = JSON.stringify(me)
    for (let attempt = 0; attempt < 50; attempt++) {
      try {
        await createComplete(path, content)
        return new DirLock(path, content)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      }
      const holder = await readHolder(path)
      if (holder === undefined) continue
      if (holder.pid > 0 && isAlive(holder)) {
        const who = holder.pid === process.pid ? 'this process (opened twice)' : `process ${holder.pid}`
        throw sluiceError(
          ErrorCode.Locked,
          `data directory ${dir} is in use by ${who} since ${holder.since}; one process owns a data directory: stop it, use another directory, or connect to it through a broker (sluice://)`,
          { details: { dir, pid: holder.pid, hostname: holder.hostname } },
        )
      }
      await DirLock.breakStale(path, holder)
    }
    throw sluiceError(ErrorCode.Locked, `could not take the lock of data directory ${dir}: it keeps changing hands`, {
      details: { dir },
    })
  }

  private static async breakStale(path: string, stale: Holder): Promise<void> {
    const breaker = `${path}.break`
    try {
      await createComplete(breaker, JSON.stringify({ pid: process.pid, startTime: processStartTime(process.pid) }))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      const other = await readHolder(breaker)
      if (other !== undefined && !(other.pid > 0 && isAlive(other))) await fs.unlink(breaker).catch(() => undefined)
      await sleep(10)
      return
    }
    try {
      const now = await readHolder(path)
      if (now !== undefined && now.pid === stale.pid && now.startTime === stale.startTime) await fs.unlink(path)
    } finally {
      await fs.unlink(breaker).catch(() => undefined)
    }
  }

  /** Gives the directory up; only removes the lock if it is still ours. */
  async release(): Promise<void> {
    if (this.released) return
    this.released = true
    try {
      if ((await fs.readFile(this.path, 'utf8')) === this.content) await fs.unlink(this.path)
    } catch {
      // Already gone: nothing to give up.
    }
  }
}
