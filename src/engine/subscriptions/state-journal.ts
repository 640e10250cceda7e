import { join } from 'node:path'
import { crc32c } from '@node-rs/crc32'
import { Packr } from 'msgpackr'
import { ErrorCode, SluiceError, sluiceError } from '../../core/errors.ts'
import { backgroundSync, type FileSystem, type LogFile } from '../log/files.ts'

/**
 * The durable state of every subscription of the engine, as a journal of
 * operations plus periodic snapshots.
 *
 * Files in `<data dir>/state/`:
 *   snapshot-<generation>.bin   the state when journal-<generation> began, as operations
 *   journal-<generation>.log    operations since then
 * Both hold frames:  length u32 | crc32c u32 (of the body) | body: MessagePack array of operations
 *
 * Operations are idempotent (replaying one twice changes nothing), because a
 * snapshot may already contain operations that are then written again to the
 * new journal. One journal serves all topics, so that one write and one fsync
 * carry every acknowledgement of a tick, and a transaction is one frame.
 */

export type StateOp =
  | {
      readonly t: 'create'
      readonly topic: string
      readonly sub: string
      readonly ordering: string
      readonly delivery: string
      readonly floors: readonly number[]
    }
  | {
      readonly t: 'config'
      readonly topic: string
      readonly sub: string
      readonly ordering: string
      readonly delivery: string
    }
  /** Acknowledged ranges [start, end) of one partition. */
  | {
      readonly t: 'ack'
      readonly topic: string
      readonly sub: string
      readonly p: number
      readonly r: readonly number[]
    }
  /** Acknowledgements taken back: at-most-once messages at offsets `o` were given back before a handler saw them. */
  | {
      readonly t: 'unack'
      readonly topic: string
      readonly sub: string
      readonly p: number
      readonly o: readonly number[]
    }
  /** Deliveries: the message at offset `o[i]` has been handed out `n[i]` times. */
  | {
      readonly t: 'try'
      readonly topic: string
      readonly sub: string
      readonly p: number
      readonly o: readonly number[]
      readonly n: readonly number[]
    }
  /**
   * A transaction: the message at (p, o) of the subscription is acknowledged
   * and `out` is published, together. Written (fsynced) before either
   * happens; `tx-done` once the outputs are stored. A `tx` without its
   * `tx-done` is published again on open (the producer id `tx:<id>` makes that idempotent:
   * outputs stored since `at` are looked for in the output topics first).
   */
  | {
      readonly t: 'tx'
      readonly id: string
      /** When the transaction was committed (ms); absent in journals written before it was recorded. */
      readonly at?: number
      readonly topic: string
      readonly sub: string
      readonly p: number
      readonly o: number
      readonly out: readonly { readonly topic: string; readonly records: readonly TxRecord[] }[]
    }
  | { readonly t: 'tx-done'; readonly id: string; readonly topic: string }
  /**
   * drop-oldest evicted everything below `before` in partition `p` (for
   * every subscription, and for reads), and the offsets `o` above it (evicted
   * past messages that a subscription held then).
   */
  | {
      readonly t: 'evict'
      readonly topic: string
      readonly p: number
      readonly before: number
      readonly o?: readonly number[]
    }
  | { readonly t: 'drop-sub'; readonly topic: string; readonly sub: string }
  | { readonly t: 'drop-topic'; readonly topic: string }

/** A message a transaction publishes, as journaled. */
export interface TxRecord {
  readonly id: string
  readonly key: string | null
  readonly headers: Readonly<Record<string, string>>
  readonly payload: Uint8Array
  readonly format: number
  readonly deliverAt: number
  readonly idFromProducer: boolean
}

const frameHeaderBytes = 8
const maxFrameBytes = 256 * 1024 * 1024
/** A journal longer than this is folded into a new snapshot. */
const checkpointBytes = 64 * 1024 * 1024

const packr = new Packr({ useRecords: false, mapsAsObjects: true })

export function encodeFrame(ops: readonly StateOp[]): Buffer {
  const body = packr.pack(ops)
  const frame = Buffer.allocUnsafe(frameHeaderBytes + body.length)
  frame.writeUInt32BE(body.length, 0)
  frame.writeUInt32BE(crc32c(body), 4)
  body.copy(frame, frameHeaderBytes)
  return frame
}

interface Decoded {
  readonly frames: StateOp[][]
  /** Bytes of complete frames. */
  readonly validBytes: number
}

/** Decodes frames; a torn last frame is left out; a bad frame followed by a good one is corruption. */
function decodeFrames(buf: Buffer, path: string): Decoded {
  const frames: StateOp[][] = []
  let p = 0
  while (p + frameHeaderBytes <= buf.length) {
    const length = buf.readUInt32BE(p)
    const end = p + frameHeaderBytes + length
    if (length > maxFrameBytes || end > buf.length) break
    const body = buf.subarray(p + frameHeaderBytes, end)
    if (crc32c(body) !== buf.readUInt32BE(p + 4)) {
      if (end < buf.length && hasValidFrameAfter(buf, end)) {
        throw sluiceError(
          ErrorCode.Corrupt,
          `subscription state file ${path} is damaged at byte ${p} and valid data follows; restore the data directory from a backup`,
          {
            details: { path, position: p },
          },
        )
      }
      break
    }
    frames.push(packr.unpack(body) as StateOp[])
    p = end
  }
  return { frames, validBytes: p }
}

function hasValidFrameAfter(buf: Buffer, from: number): boolean {
  for (let q = from; q + frameHeaderBytes <= buf.length; q++) {
    const length = buf.readUInt32BE(q)
    const end = q + frameHeaderBytes + length
    if (length === 0 || end > buf.length) continue
    if (crc32c(buf.subarray(q + frameHeaderBytes, end)) === buf.readUInt32BE(q + 4)) return true
  }
  return false
}

interface Pending {
  readonly ops: readonly StateOp[]
  readonly sync: boolean
  readonly resolve: () => void
  readonly reject: (err: unknown) => void
}

export class StateJournal {
  private pending: Pending[] = []
  private flushQueued = false
  private chain: Promise<void> = Promise.resolve()
  private failure: SluiceError | null = null
  private closed = false
  private journalBytes = 0
  /** Written but not fsynced (operations of `interval` topics). */
  private dirty = false
  private syncTimer: NodeJS.Timeout | null = null
  private syncing = false
  private timerSyncing = false
  private syncWaiters: Pending[] = []
  private readonly syncIdleWaiters: (() => void)[] = []

  private constructor(
    private readonly dir: string,
    private readonly fs: FileSystem,
    private generation: number,
    private file: LogFile,
    /** Produces the whole current state as operations, for a snapshot. */
    private readonly snapshot: () => StateOp[],
  ) {}

  /** Opens the state in `dir`, calling `apply` for every operation of the snapshot and journal, in order. */
  static async open(
    dir: string,
    fs: FileSystem,
    apply: (op: StateOp) => void,
    snapshot: () => StateOp[],
  ): Promise<StateJournal> {
    await fs.mkdir(dir)
    const names = await fs.readdir(dir)
    for (const name of names) if (name.endsWith('.tmp')) await fs.unlink(join(dir, name))
    const generations = names
      .map((name) => /^snapshot-(\d+)\.bin$/.exec(name)?.[1])
      .filter((g): g is string => g !== undefined)
      .map(Number)
      .sort((a, b) => b - a)
    const generation = generations[0] ?? 0
    if (generations.length > 0) {
      const path = join(dir, `snapshot-${generation}.bin`)
      const decoded = decodeFrames(await fs.readFile(path), path)
      if (decoded.frames.length !== 1) {
        throw sluiceError(
          ErrorCode.Corrupt,
          `subscription snapshot ${path} is incomplete; restore the data directory from a backup`,
          { details: { path } },
        )
      }
      for (const op of decoded.frames[0]!) apply(op)
    }
    const journalPath = join(dir, `journal-${generation}.log`)
    let file: LogFile
    let bytes = 0
    if (await fs.exists(journalPath)) {
      file = await fs.open(journalPath, 'write')
      const size = await file.size()
      const buf = Buffer.allocUnsafe(size)
      let got = 0
      while (got < size) {
        const n = await file.read(buf.subarray(got), got)
        if (n === 0) break
        got += n
      }
      const decoded = decodeFrames(buf.subarray(0, got), journalPath)
      for (const frame of decoded.frames) for (const op of frame) apply(op)
      bytes = decoded.validBytes
      if (bytes < size) {
        // A torn last frame: its acknowledgements never resolved, so cutting it loses no promise.
        await file.truncate(bytes)
        await file.sync()
      }
    } else {
      file = await fs.open(journalPath, 'create')
      await fs.syncDir(dir)
    }
    // Older generations are leftovers of a checkpoint cut short.
    for (const name of names) {
      const g = /^(?:snapshot|journal)-(\d+)\.(?:bin|log)$/.exec(name)?.[1]
      if (g !== undefined && Number(g) < generation) await fs.unlink(join(dir, name))
    }
    const journal = new StateJournal(dir, fs, generation, file, snapshot)
    journal.journalBytes = bytes
    // Operations written without fsync (interval topics) are fsynced within this interval.
    journal.syncTimer = setInterval(() => void backgroundSync(() => journal.syncIfDirty()), 100)
    journal.syncTimer.unref()
    return journal
  }

  /**
   * Writes operations (already applied in memory by the caller) and resolves
   * once they are written, and fsynced when `sync`. Operations of one tick
   * share one write and at most one fsync.
   */
  append(ops: readonly StateOp[], sync: boolean): Promise<void> {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.closed) return Promise.reject(sluiceError(ErrorCode.Closed, 'the subscription state is closed'))
    if (ops.length === 0) return Promise.resolve()
    return new Promise((resolve, reject) => {
      this.pending.push({ ops, sync, resolve, reject })
      if (!this.flushQueued) {
        this.flushQueued = true
        setImmediate(() => void this.exclusive(() => this.flush()))
      }
    })
  }

  private exclusive(job: () => Promise<void>): Promise<void> {
    const run = this.chain.then(job)
    this.chain = run.catch(() => undefined)
    return run
  }

  private async flush(): Promise<void> {
    this.flushQueued = false
    const batch = this.pending
    this.pending = []
    if (batch.length === 0) return
    if (this.failure !== null) {
      for (const p of batch) p.reject(this.failure)
      return
    }
    const frame = encodeFrame(batch.flatMap((p) => p.ops))
    const at = this.journalBytes
    try {
      // Small frames go straight into the page cache: cheaper than a trip through the thread pool.
      // (Unless an fsync is running: a write to a page under writeback would block the event loop until it ends.)
      if (frame.length <= 64 * 1024 && !this.syncing && !this.timerSyncing) this.file.writevSync([frame], at)
      else await this.file.write(frame, at)
    } catch (err) {
      const failure = await this.writeFailed(at, err)
      for (const p of batch) p.reject(failure)
      return
    }
    this.journalBytes += frame.length
    this.dirty = true
    for (const p of batch) {
      if (p.sync) this.syncWaiters.push(p)
      else p.resolve()
    }
    if (this.syncWaiters.length > 0) this.startSync()
    if (this.journalBytes > checkpointBytes) await this.checkpointNow().catch(() => undefined)
  }

  /**
   * Fsyncs for the operations that asked for it. The fsync runs beside the
   * next writes (only writes are serialised): an unsynced operation does not
   * wait behind someone else's fsync, and every fsync covers all that was
   * written before it started (group commit).
   */
  private startSync(): void {
    if (this.syncing) return
    this.syncing = true
    const waiters = this.syncWaiters
    this.syncWaiters = []
    this.dirty = false
    this.file
      .sync()
      .then(
        () => {
          for (const w of waiters) w.resolve()
        },
        (err: unknown) => {
          const failure = this.fail('fsync of the subscription journal failed', err)
          for (const w of waiters) w.reject(failure)
        },
      )
      .finally(() => {
        this.syncing = false
        if (this.syncWaiters.length > 0) this.startSync()
        else for (const wake of this.syncIdleWaiters.splice(0)) wake()
      })
  }

  /** Resolves once no fsync is running or waiting (before the file changes hands). */
  private syncsSettled(): Promise<void> {
    if (!this.syncing && this.syncWaiters.length === 0) return Promise.resolve()
    return new Promise((resolve) => this.syncIdleWaiters.push(resolve))
  }

  private syncIfDirty(): Promise<void> {
    if (!this.dirty || this.failure !== null || this.closed) return Promise.resolve()
    return this.exclusive(async () => {
      if (!this.dirty) return
      this.dirty = false
      this.timerSyncing = true
      try {
        await this.file.sync()
      } catch (err) {
        this.fail('fsync of the subscription journal failed', err)
      } finally {
        this.timerSyncing = false
      }
    })
  }

  private async writeFailed(size: number, err: unknown): Promise<SluiceError> {
    try {
      await this.file.truncate(size)
    } catch {
      return this.fail('writing the subscription journal failed and could not be undone', err)
    }
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOSPC' || code === 'EDQUOT') {
      return sluiceError(
        ErrorCode.StorageFull,
        `the disk holding ${this.dir} is full: the acknowledgement was not recorded; free space and try again`,
        { cause: err },
      )
    }
    return this.fail('writing the subscription journal failed', err)
  }

  private fail(what: string, err: unknown): SluiceError {
    this.failure ??= sluiceError(
      ErrorCode.StorageFailed,
      `${what} (${(err as NodeJS.ErrnoException).code ?? String(err)}); subscription state refuses writes until the data directory is reopened`,
      { cause: err },
    )
    return this.failure
  }

  /** Folds the journal into a new snapshot (also done on its own when the journal grows large). */
  checkpoint(): Promise<void> {
    return this.exclusive(() => this.checkpointNow())
  }

  private async checkpointNow(): Promise<void> {
    if (this.failure !== null) return
    await this.syncsSettled()
    const next = this.generation + 1
    const snapshotPath = join(this.dir, `snapshot-${next}.bin`)
    await this.fs.writeFileAtomic(snapshotPath, encodeFrame(this.snapshot()))
    const journalPath = join(this.dir, `journal-${next}.log`)
    await this.fs.removeTree(journalPath)
    const file = await this.fs.open(journalPath, 'create')
    await this.fs.syncDir(this.dir)
    const old = this.file
    const oldGeneration = this.generation
    this.file = file
    this.generation = next
    this.journalBytes = 0
    await old.close()
    await this.fs.unlink(join(this.dir, `journal-${oldGeneration}.log`)).catch(() => undefined)
    await this.fs.unlink(join(this.dir, `snapshot-${oldGeneration}.bin`)).catch(() => undefined)
  }

  /** Writes what is queued, takes a snapshot (so the next open replays little) and closes. */
  async close(): Promise<void> {
    if (this.closed) return
    await this.exclusive(() => this.flush())
    this.closed = true
    if (this.syncTimer !== null) clearInterval(this.syncTimer)
    if (this.failure === null) await this.checkpoint().catch(() => undefined)
    await this.chain
    await this.syncsSettled()
    await this.file.close()
  }
}
