import { mkdir, writeFile } from 'node:fs/promises'
import { dirname, join, relative } from 'node:path'
import { nodeFileSystem, type FileSystem, type LogFile } from '../../src/engine/log/files.ts'

/**
 * A file layer that knows what a power cut would leave on disk, as SQLite's
 * crash tests do. The engine runs on real files; beside them this layer keeps
 * what is durable: each file's contents as of its last fsync, and each
 * directory's entries as of its last directory fsync. Writes and directory
 * changes since then are pending.
 *
 * `crash()` stops every further operation (the process is gone), and
 * `materialize(dir, random)` writes one possible disk after the power cut:
 * every pending write is kept, dropped or partly kept sector by sector in any
 * order (the disk and the page cache reorder freely before an fsync, but a
 * sector is written whole), the file's size is the old one, the one the kept
 * sectors reach, or the new one (metadata persisted, data not: zeros), and
 * each directory keeps some prefix of its pending changes (journaled
 * metadata is ordered).
 *
 * Simplifications, on the side of the engine: directories made with `mkdir`
 * and trees removed with `removeTree` are durable at once.
 */
export const sectorBytes = 512

type Pending = { kind: 'write'; position: number; data: Buffer } | { kind: 'truncate'; size: number }

interface Inode {
  durable: Buffer
  pending: Pending[]
}

type DirChange =
  | { kind: 'link'; name: string; inode: Inode }
  | { kind: 'unlink'; name: string }
  | { kind: 'rename'; from: string; to: string }

export class CrashedError extends Error {
  readonly code = 'ECRASHED'
}

export class PowerLossFileSystem implements FileSystem {
  /** Directory entries as the running process sees them. */
  private readonly live = new Map<string, Inode>()
  /** Directory entries a power cut keeps, per directory, and changes since its last fsync. */
  private readonly durableEntries = new Map<string, Map<string, Inode>>()
  private readonly pendingDirChanges = new Map<string, DirChange[]>()
  private readonly dirs = new Set<string>()
  private crashed = false
  /** Mutating operations so far: a crash point is a count of these. */
  operations = 0
  /** Crash when `operations` reaches this (before doing it). */
  crashAt = Infinity
  /** Called at each completed fsync of a file, with its path and the operation count when it began. */
  onSync: ((path: string, began: number) => void) | null = null

  constructor(readonly root: string) {
    this.dirs.add(root)
  }

  hasCrashed(): boolean {
    return this.crashed
  }

  crash(): void {
    this.crashed = true
  }

  private step(): void {
    if (this.crashed) throw new CrashedError('the power is off')
    if (++this.operations >= this.crashAt) {
      this.crashed = true
      throw new CrashedError('the power went off here')
    }
  }

  private dirChanges(dir: string): DirChange[] {
    let list = this.pendingDirChanges.get(dir)
    if (list === undefined) this.pendingDirChanges.set(dir, (list = []))
    return list
  }

  async open(path: string, mode: 'read' | 'write' | 'create'): Promise<LogFile> {
    if (mode === 'create') this.step()
    else if (this.crashed) throw new CrashedError('the power is off')
    const file = await nodeFileSystem.open(path, mode)
    let inode = this.live.get(path)
    if (mode === 'create' || inode === undefined) {
      inode = { durable: Buffer.alloc(0), pending: [] }
      this.live.set(path, inode)
      this.dirChanges(dirname(path)).push({ kind: 'link', name: path, inode })
    }
    return this.wrap(file, inode)
  }

  private wrap(file: LogFile, inode: Inode): LogFile {
    const record = (data: Uint8Array, position: number): void => {
      inode.pending.push({ kind: 'write', position, data: Buffer.from(data) })
    }
    return {
      path: file.path,
      write: async (data, position) => {
        this.step()
        record(data, position)
        await file.write(data, position)
      },
      writev: async (buffers, position) => {
        this.step()
        record(Buffer.concat(buffers), position)
        await file.writev(buffers, position)
      },
      writevSync: (buffers, position) => {
        this.step()
        record(Buffer.concat(buffers), position)
        file.writevSync(buffers, position)
      },
      read: (buffer, position, length) => {
        if (this.crashed) return Promise.reject(new CrashedError('the power is off'))
        return file.read(buffer, position, length)
      },
      sync: async () => {
        this.step()
        const began = this.operations
        const settled = inode.pending.length
        await file.sync()
        if (this.crashed) throw new CrashedError('the power went off during fsync')
        for (const p of inode.pending.splice(0, settled)) inode.durable = apply(inode.durable, p)
        this.onSync?.(file.path, began)
      },
      truncate: async (size) => {
        this.step()
        inode.pending.push({ kind: 'truncate', size })
        await file.truncate(size)
      },
      size: () => file.size(),
      close: () => file.close(),
    }
  }

  readFile = (path: string): Promise<Buffer> => {
    if (this.crashed) return Promise.reject(new CrashedError('the power is off'))
    return nodeFileSystem.readFile(path)
  }

  async writeFileAtomic(path: string, data: Uint8Array): Promise<void> {
    const tmp = `${path}.tmp`
    if (this.live.has(tmp)) await this.unlink(tmp)
    const file = await this.open(tmp, 'create')
    try {
      await file.write(data, 0)
      await file.sync()
    } finally {
      await file.close()
    }
    await this.rename(tmp, path)
    await this.syncDir(dirname(path))
  }

  async mkdir(path: string): Promise<void> {
    if (this.crashed) throw new CrashedError('the power is off')
    await nodeFileSystem.mkdir(path)
    for (let d = path; d.startsWith(this.root) && !this.dirs.has(d); d = dirname(d)) this.dirs.add(d)
  }

  readdir = (path: string): Promise<string[]> => {
    if (this.crashed) return Promise.reject(new CrashedError('the power is off'))
    return nodeFileSystem.readdir(path)
  }

  async rename(from: string, to: string): Promise<void> {
    this.step()
    await nodeFileSystem.rename(from, to)
    const inode = this.live.get(from)
    if (inode === undefined) {
      // A directory: durable at once (see above).
      this.moveTree(from, to)
      return
    }
    this.live.delete(from)
    this.live.set(to, inode)
    if (dirname(from) === dirname(to)) this.dirChanges(dirname(to)).push({ kind: 'rename', from, to })
    else {
      this.dirChanges(dirname(from)).push({ kind: 'unlink', name: from })
      this.dirChanges(dirname(to)).push({ kind: 'link', name: to, inode })
    }
  }

  async unlink(path: string): Promise<void> {
    this.step()
    await nodeFileSystem.unlink(path)
    this.live.delete(path)
    this.dirChanges(dirname(path)).push({ kind: 'unlink', name: path })
  }

  async removeTree(path: string): Promise<void> {
    if (this.crashed) throw new CrashedError('the power is off')
    await nodeFileSystem.removeTree(path)
    const under = (p: string): boolean => p === path || p.startsWith(path + '/')
    for (const p of [...this.live.keys()]) if (under(p)) this.live.delete(p)
    for (const d of [...this.dirs]) if (under(d)) this.dirs.delete(d)
    for (const d of [...this.durableEntries.keys()]) if (under(d)) this.durableEntries.delete(d)
    for (const d of [...this.pendingDirChanges.keys()]) if (under(d)) this.pendingDirChanges.delete(d)
    const parent = this.durableEntries.get(dirname(path))
    parent?.delete(path)
  }

  exists = (path: string): Promise<boolean> => nodeFileSystem.exists(path)
  freeBytes = (path: string): Promise<number> => nodeFileSystem.freeBytes(path)

  async syncDir(path: string): Promise<void> {
    this.step()
    const changes = this.pendingDirChanges.get(path) ?? []
    const settled = changes.length
    await nodeFileSystem.syncDir(path)
    if (this.crashed) throw new CrashedError('the power went off during fsync')
    applyDirChanges(this.durable(path), changes.splice(0, settled))
  }

  private durable(dir: string): Map<string, Inode> {
    let entries = this.durableEntries.get(dir)
    if (entries === undefined) this.durableEntries.set(dir, (entries = new Map<string, Inode>()))
    return entries
  }

  private moveTree(from: string, to: string): void {
    const moved = (p: string): string | null =>
      p === from || p.startsWith(from + '/') ? to + p.slice(from.length) : null
    renameKeys(this.live, moved)
    renameKeys(this.durableEntries, moved)
    renameKeys(this.pendingDirChanges, moved)
    for (const entries of this.durableEntries.values()) renameKeys(entries, moved)
    for (const d of [...this.dirs]) {
      const q = moved(d)
      if (q !== null) {
        this.dirs.delete(d)
        this.dirs.add(q)
      }
    }
  }

  /**
   * Writes one disk a power cut at this moment could leave, under `target`
   * (paths relative to the root). Returns what it chose, for the report.
   */
  async materialize(target: string, random: () => number): Promise<{ files: number; tornWrites: number }> {
    const files = new Map<string, Inode>()
    for (const dir of this.dirs) {
      const entries = new Map(this.durable(dir))
      const changes = this.pendingDirChanges.get(dir) ?? []
      applyDirChanges(entries, changes.slice(0, Math.floor(random() * (changes.length + 1))))
      for (const [path, inode] of entries) files.set(path, inode)
    }
    let tornWrites = 0
    for (const dir of this.dirs) await mkdir(join(target, relative(this.root, dir)), { recursive: true })
    for (const [path, inode] of files) {
      const { data, torn } = afterPowerCut(inode, random)
      if (torn) tornWrites++
      await writeFile(join(target, relative(this.root, path)), data)
    }
    return { files: files.size, tornWrites }
  }
}

function renameKeys<V>(map: Map<string, V>, moved: (key: string) => string | null): void {
  for (const [key, value] of [...map]) {
    const to = moved(key)
    if (to !== null) {
      map.delete(key)
      map.set(to, value)
    }
  }
}

function applyDirChanges(entries: Map<string, Inode>, changes: readonly DirChange[]): void {
  for (const c of changes) {
    if (c.kind === 'link') entries.set(c.name, c.inode)
    else if (c.kind === 'unlink') entries.delete(c.name)
    else {
      const inode = entries.get(c.from)
      entries.delete(c.from)
      if (inode !== undefined) entries.set(c.to, inode)
    }
  }
}

function apply(content: Buffer, p: Pending): Buffer {
  if (p.kind === 'truncate') {
    if (p.size <= content.length) return content.subarray(0, p.size)
    return Buffer.concat([content, Buffer.alloc(p.size - content.length)])
  }
  const end = p.position + p.data.length
  const out = end > content.length ? Buffer.concat([content, Buffer.alloc(end - content.length)]) : Buffer.from(content)
  p.data.copy(out, p.position)
  return out
}

/** One outcome of a file's pending changes at a power cut. */
function afterPowerCut(inode: Inode, random: () => number): { data: Buffer; torn: boolean } {
  if (inode.pending.length === 0) return { data: inode.durable, torn: false }
  // What the running process saw, and which of its sectors reached the platter.
  let full = inode.durable
  for (const p of inode.pending) full = apply(full, p)
  const oldSize = inode.durable.length
  const out = Buffer.alloc(Math.max(full.length, oldSize))
  inode.durable.copy(out)
  const sectors = Math.ceil(out.length / sectorBytes)
  const keepAll = random() < 0.3
  let reached = oldSize
  let torn = false
  for (let s = 0; s < sectors; s++) {
    const from = s * sectorBytes
    const to = Math.min(out.length, from + sectorBytes)
    const changed = !full.subarray(from, to).equals(padded(inode.durable, from, to))
    if (!changed) continue
    if (keepAll || random() < 0.5) {
      full.copy(out, from, from, Math.min(to, full.length))
      reached = Math.max(reached, Math.min(to, full.length))
    } else torn = true
  }
  const sizes = [oldSize, reached, full.length]
  const size = sizes[Math.floor(random() * sizes.length)]!
  return { data: out.subarray(0, size), torn }
}

function padded(buf: Buffer, from: number, to: number): Buffer {
  const out = Buffer.alloc(to - from)
  if (from < buf.length) buf.copy(out, 0, from, Math.min(to, buf.length))
  return out
}
