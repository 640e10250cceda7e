import * as fs from 'node:fs'
import { dirname } from 'node:path'

/**
 * The file operations the log needs, behind an interface so that fault tests
 * can put a layer below the engine that fails, tears or drops writes the way
 * a crashing disk does. `nodeFileSystem` is the real one.
 */
export interface LogFile {
  readonly path: string
  /** Writes all of `data` at `position`. */
  write(data: Uint8Array, position: number): Promise<void>
  /** Writes all of `buffers`, back to back, at `position` (one system call when it can). */
  writev(buffers: readonly Uint8Array[], position: number): Promise<void>
  /**
   * The same, blocking the caller: for small writes, where handing the call to
   * libuv's thread pool costs more time than the write into the page cache.
   */
  writevSync(buffers: readonly Uint8Array[], position: number): void
  /** Reads into `buffer` from `position`; returns the bytes read (fewer at the end of the file). */
  read(buffer: Uint8Array, position: number, length?: number): Promise<number>
  /** fdatasync: the data and the size are durable once this resolves. */
  sync(): Promise<void>
  truncate(size: number): Promise<void>
  size(): Promise<number>
  close(): Promise<void>
}

export interface FileSystem {
  /** `create` fails if the file exists; `write` opens an existing file for reading and writing. */
  open(path: string, mode: 'read' | 'write' | 'create'): Promise<LogFile>
  readFile(path: string): Promise<Buffer>
  /** Writes a whole file durably: to `<path>.tmp`, fsync, rename into place, fsync the directory. */
  writeFileAtomic(path: string, data: Uint8Array): Promise<void>
  mkdir(path: string): Promise<void>
  readdir(path: string): Promise<string[]>
  rename(from: string, to: string): Promise<void>
  unlink(path: string): Promise<void>
  removeTree(path: string): Promise<void>
  exists(path: string): Promise<boolean>
  /** fsync a directory, so that files created or renamed in it survive a crash. */
  syncDir(path: string): Promise<void>
  /** Bytes free for this process on the disk holding `path` (statfs). */
  freeBytes(path: string): Promise<number>
}

function call<T>(fn: (cb: (err: NodeJS.ErrnoException | null, value: T) => void) => void): Promise<T> {
  return new Promise((resolve, reject) => {
    fn((err, value) => (err ? reject(err) : resolve(value)))
  })
}

class NodeLogFile implements LogFile {
  constructor(
    readonly path: string,
    private readonly fd: number,
  ) {}

  async write(data: Uint8Array, position: number): Promise<void> {
    let done = 0
    while (done < data.length) {
      const written = await call<number>((cb) => fs.write(this.fd, data, done, data.length - done, position + done, cb))
      done += written
    }
  }

  async writev(buffers: readonly Uint8Array[], position: number): Promise<void> {
    if (buffers.length === 1) return this.write(buffers[0]!, position)
    let total = 0
    for (const b of buffers) total += b.length
    const written = await call<number>((cb) => fs.writev(this.fd, buffers as Uint8Array[], position, cb))
    if (written < total) {
      // A short write (rare, e.g. near a full disk): write the rest as one piece.
      await this.write(Buffer.concat(buffers).subarray(written), position + written)
    }
  }

  writevSync(buffers: readonly Uint8Array[], position: number): void {
    let total = 0
    for (const b of buffers) total += b.length
    const written = fs.writevSync(this.fd, buffers, position)
    if (written < total) {
      const rest = Buffer.concat(buffers).subarray(written)
      for (let done = 0; done < rest.length;)
        done += fs.writeSync(this.fd, rest, done, rest.length - done, position + written + done)
    }
  }

  read(buffer: Uint8Array, position: number, length = buffer.length): Promise<number> {
    return call<number>((cb) => fs.read(this.fd, buffer, 0, length, position, cb))
  }

  sync(): Promise<void> {
    return call<undefined>((cb) => fs.fdatasync(this.fd, (err) => cb(err, undefined)))
  }

  truncate(size: number): Promise<void> {
    return call<undefined>((cb) => fs.ftruncate(this.fd, size, (err) => cb(err, undefined)))
  }

  async size(): Promise<number> {
    const stat = await call<fs.Stats>((cb) => fs.fstat(this.fd, cb))
    return stat.size
  }

  close(): Promise<void> {
    return call<undefined>((cb) => fs.close(this.fd, (err) => cb(err, undefined)))
  }
}

const openFlags = { read: 'r', write: 'r+', create: 'wx+' } as const

export const nodeFileSystem: FileSystem = {
  async open(path, mode) {
    const fd = await call<number>((cb) => fs.open(path, openFlags[mode], 0o644, cb))
    return new NodeLogFile(path, fd)
  },
  readFile: (path) => fs.promises.readFile(path),
  async writeFileAtomic(path, data) {
    const tmp = `${path}.tmp`
    const handle = await fs.promises.open(tmp, 'w', 0o644)
    try {
      await handle.writeFile(data)
      await handle.sync()
    } finally {
      await handle.close()
    }
    await fs.promises.rename(tmp, path)
    await nodeFileSystem.syncDir(dirname(path))
  },
  async mkdir(path) {
    await fs.promises.mkdir(path, { recursive: true })
  },
  readdir: (path) => fs.promises.readdir(path),
  rename: (from, to) => fs.promises.rename(from, to),
  unlink: (path) => fs.promises.unlink(path),
  removeTree: (path) => fs.promises.rm(path, { recursive: true, force: true }),
  async exists(path) {
    try {
      await fs.promises.access(path)
      return true
    } catch {
      return false
    }
  },
  async freeBytes(path) {
    const stats = await fs.promises.statfs(path)
    return stats.bavail * stats.bsize
  },
  async syncDir(path) {
    const handle = await fs.promises.open(path, 'r')
    try {
      await handle.sync()
    } finally {
      await handle.close()
    }
  },
}

let backgroundSyncs: Promise<void> = Promise.resolve()

/**
 * Runs a background fsync (the `interval` durability timer, the subscription
 * journal's timer) after the ones before it, never two at once. An fsync
 * holds a libuv thread for milliseconds; a few of them at once would take
 * every thread of the pool and stall the writes that publishers wait on.
 */
export function backgroundSync(sync: () => Promise<void>): Promise<void> {
  const run = backgroundSyncs.then(sync)
  backgroundSyncs = run.then(
    () => undefined,
    () => undefined,
  )
  return run
}
