import { sep } from 'node:path'
import { nodeFileSystem, type FileSystem, type LogFile } from '../../src/engine/log/files.ts'

/**
 * The real file system with failures switched on by the test: `failWrites`
 * makes writes fail (ENOSPC by default), `failSyncs` makes fdatasync fail;
 * with `failUnder`, only those of files under that directory.
 */
export class FaultyFileSystem implements FileSystem {
  failWrites: string | null = null
  failSyncs: string | null = null
  failUnder: string | null = null
  /** What `freeBytes` answers, when set (else the real figure). */
  freeBytesAnswer: number | null = null
  writes = 0
  syncs = 0
  /** Bytes read from files so far: what a test counts to show work, where timing would be flaky. */
  bytesRead = 0

  private errorFor(code: string, path: string): NodeJS.ErrnoException {
    const err: NodeJS.ErrnoException = new Error(`${code}: injected failure, ${path}`)
    err.code = code
    return err
  }

  async open(path: string, mode: 'read' | 'write' | 'create'): Promise<LogFile> {
    const file = await nodeFileSystem.open(path, mode)
    const failing = (code: string | null): code is string =>
      code !== null && (this.failUnder === null || path.startsWith(this.failUnder + sep))
    return {
      path: file.path,
      write: async (data, position) => {
        this.writes++
        if (failing(this.failWrites)) {
          // A partial write first, as a filling disk does.
          await file.write(data.subarray(0, Math.floor(data.length / 2)), position)
          throw this.errorFor(this.failWrites, path)
        }
        return file.write(data, position)
      },
      writev: async (buffers, position) => {
        this.writes++
        if (failing(this.failWrites)) {
          await file.write(buffers[0]!.subarray(0, Math.floor(buffers[0]!.length / 2)), position)
          throw this.errorFor(this.failWrites, path)
        }
        return file.writev(buffers, position)
      },
      writevSync: (buffers, position) => {
        this.writes++
        if (failing(this.failWrites)) {
          file.writevSync([buffers[0]!.subarray(0, Math.floor(buffers[0]!.length / 2))], position)
          throw this.errorFor(this.failWrites, path)
        }
        file.writevSync(buffers, position)
      },
      read: async (buffer, position, length) => {
        const n = await file.read(buffer, position, length)
        this.bytesRead += n
        return n
      },
      sync: async () => {
        this.syncs++
        if (failing(this.failSyncs)) throw this.errorFor(this.failSyncs, path)
        return file.sync()
      },
      truncate: (size) => file.truncate(size),
      size: () => file.size(),
      close: () => file.close(),
    }
  }

  readFile = (path: string): Promise<Buffer> => nodeFileSystem.readFile(path)
  writeFileAtomic = (path: string, data: Uint8Array): Promise<void> => nodeFileSystem.writeFileAtomic(path, data)
  mkdir = (path: string): Promise<void> => nodeFileSystem.mkdir(path)
  readdir = (path: string): Promise<string[]> => nodeFileSystem.readdir(path)
  rename = (from: string, to: string): Promise<void> => nodeFileSystem.rename(from, to)
  unlink = (path: string): Promise<void> => nodeFileSystem.unlink(path)
  removeTree = (path: string): Promise<void> => nodeFileSystem.removeTree(path)
  exists = (path: string): Promise<boolean> => nodeFileSystem.exists(path)
  syncDir = (path: string): Promise<void> => nodeFileSystem.syncDir(path)
  freeBytes = (path: string): Promise<number> =>
    this.freeBytesAnswer === null ? nodeFileSystem.freeBytes(path) : Promise.resolve(this.freeBytesAnswer)
}
