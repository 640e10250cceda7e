// Over 500 lines: one partition's log on disk (segments, group commit, preallocation, reads, retention)
// kept together because each path must see the same segment list and write position.
import { join } from 'node:path'
import { ErrorCode, SluiceError, sluiceError } from '../../core/errors.ts'
import type { Clock } from '../../core/clock.ts'
import { backgroundSync, type FileSystem, type LogFile } from './files.ts'
import type { PartitionLog, RecoveryReport, RetentionPolicy, RetentionResult } from './partition-log.ts'
import {
  decodeRecord,
  DecodeProblem,
  encodeBody,
  encodedSize,
  stampRecord,
  storedRecord,
  type LogRecord,
  type RecordDraft,
} from './record.ts'
import type { CacheBudget } from './cache-budget.ts'
import { RecordCache } from './record-cache.ts'
import { maxUnsyncedBytes, scanSegment } from './recovery.ts'
import { defaultIndexIntervalBytes as indexIntervalBytes, SegmentIndex } from './segment-index.ts'
import { segmentFileName, segmentNamePattern } from './segment-name.ts'

/**
 * A partition's log on disk: a folder of segments named by base offset.
 *
 * Writes go through group commit: every append that arrives while the
 * previous write is in progress (or in the same tick) is encoded into one
 * buffer, written with one `write` and, for `fsync` durability, made durable
 * with one `fdatasync`; only then do their receipts resolve and the records
 * become readable. Offsets are assigned when a batch is written, so a batch
 * that fails (disk full) leaves no gap.
 *
 * An fsync that fails poisons the log: after it, the kernel may have dropped
 * the dirty pages, so a later fsync that "succeeds" proves nothing. The log
 * refuses writes until it is reopened (and recovery reads what is really there).
 */

export interface FileLogOptions {
  readonly dir: string
  readonly fs: FileSystem
  readonly clock: Clock
  /** `none`: written, never fsynced (the spill files of memory topics, which are gone on restart anyway). */
  readonly durability: 'fsync' | 'interval' | 'none'
  /** The first offset of a new, empty log (default 0). */
  readonly initialOffset?: number
  readonly fsyncIntervalMs: number
  readonly segmentBytes: number
  /** Bytes of recent records kept in memory for reads. */
  readonly cacheBytes: number
  /** A budget the cache shares with other logs' caches (the engine's). */
  readonly cacheBudget?: CacheBudget
  /**
   * Collect, at open, the records stored since this time (ms) whose id the
   * producer chose, so duplicates are still recognised after a restart.
   * Undefined: none (deduplication by id is off).
   */
  readonly recentSinceMs?: number
  /**
   * Collect, at open, the records with a producer id stored since this time
   * (ms), so that retries of appends from before a restart are still
   * recognised. Those of the tail segment are collected whatever their age.
   */
  readonly producersSinceMs?: number
  /**
   * The most bytes at the active segment's end left unsynced (default
   * `maxUnsyncedBytes`): recovery cuts damage within it as a torn tail.
   * Smaller in tests.
   */
  readonly maxUnsyncedBytes?: number
}

/** A record found at open that deduplication must know of. */
export interface RecentRecord {
  readonly id: string
  readonly idFromProducer: boolean
  readonly producerId: string
  readonly sequence: number
  readonly offset: number
  readonly timestamp: number
}

interface Segment {
  readonly baseOffset: number
  nextOffset: number
  logBytes: number
  lastTimestamp: number
  readonly index: SegmentIndex
  readonly logPath: string
  readonly indexPath: string
  file: LogFile | null
  /** Bytes known to be fsynced (those before the start of the last completed fsync). */
  syncedBytes: number
  /** Reads in progress; a deleted segment's file is closed when they end. */
  readers: number
  deleted: boolean
}

/** An append waiting for its batch: already encoded, so none of the caller's memory is kept. */
interface PendingAppend {
  readonly drafts: readonly RecordDraft[]
  /** The records back to back; offsets, timestamps and checksums are set when the batch is written. */
  readonly buf: Buffer
  readonly sizes: readonly number[]
  readonly payloadAts: readonly number[]
  readonly resolve: (records: LogRecord[]) => void
  readonly reject: (err: unknown) => void
}

/** The largest single read; reads are sized to what is asked for, up to this. */
const readChunkBytes = 1024 * 1024
/** The most one write takes: bigger batches would leave the CPU idle while the disk works. */
const maxWriteBytes = 1024 * 1024
/** Records per read when scanning segments at open (a bound on the memory a scan holds). */
const scanBatchRecords = 256
/** An active segment is sealed for retention only after this long without appends. */
const quietRollMs = 60_000
/** Batches up to this size are written without the thread pool: see `LogFile.writevSync`. */
const syncWriteBytes = 64 * 1024

function errno(err: unknown): string | undefined {
  return (err as NodeJS.ErrnoException | undefined)?.code
}

function isDiskFull(err: unknown): boolean {
  const code = errno(err)
  return code === 'ENOSPC' || code === 'EDQUOT'
}

export class FileLog implements PartitionLog {
  private segments: Segment[] = []
  private pending: PendingAppend[] = []
  private flushQueued = false
  private chain: Promise<void> = Promise.resolve()
  private failure: SluiceError | null = null
  private closed = false
  private dirty = false
  /** Background fsyncs running (interval durability): small writes go through the thread pool meanwhile. */
  private syncsInFlight = 0
  private stopSyncTimer: (() => void) | null = null
  private readonly listeners = new Set<(endOffset: number) => void>()
  private readonly cache: RecordCache
  /** What recovery cut from a torn tail when this log was opened. */
  recovery: RecoveryReport | null = null
  /**
   * Records found at open that deduplication must know of (see
   * `recentSinceMs` and `producersSinceMs`), oldest first, from every
   * segment written within those times. Taken (and cleared) by the engine.
   */
  recentRecords: RecentRecord[] = []

  private constructor(private readonly options: FileLogOptions) {
    this.cache = new RecordCache(options.cacheBytes, options.cacheBudget)
  }

  /** Bytes of records the cache holds now. */
  get cachedBytes(): number {
    return this.cache.bytes
  }

  /** Opens (or creates) the log in `options.dir`, recovering a torn tail. */
  static async open(options: FileLogOptions): Promise<FileLog> {
    const log = new FileLog(options)
    await log.load()
    if (options.durability === 'interval') log.scheduleIntervalSync()
    return log
  }

  get startOffset(): number {
    return this.segments[0]!.baseOffset
  }

  get endOffset(): number {
    return this.active.nextOffset
  }

  get bytes(): number {
    let total = 0
    for (const segment of this.segments) total += segment.logBytes
    return total
  }

  bytesFrom(offset: number): number {
    let total = 0
    for (let i = this.segments.length - 1; i >= 0; i--) {
      const segment = this.segments[i]!
      if (segment.nextOffset <= offset) break
      if (segment.baseOffset >= offset) total += segment.logBytes
      else {
        // The sparse index finds the last indexed record at or before `offset`: at most one interval early.
        total += segment.logBytes - segment.index.positionFor(offset)
        break
      }
    }
    return total
  }

  /** The segment files, oldest first (for tools and tests). */
  get segmentPaths(): string[] {
    return this.segments.map((s) => s.logPath)
  }

  private get active(): Segment {
    return this.segments[this.segments.length - 1]!
  }

  private segment(baseOffset: number): Segment {
    return {
      baseOffset,
      nextOffset: baseOffset,
      logBytes: 0,
      lastTimestamp: 0,
      index: new SegmentIndex(),
      logPath: join(this.options.dir, segmentFileName(baseOffset, 'log')),
      indexPath: join(this.options.dir, segmentFileName(baseOffset, 'idx')),
      file: null,
      syncedBytes: 0,
      readers: 0,
      deleted: false,
    }
  }

  private async load(): Promise<void> {
    const { fs, dir } = this.options
    await fs.mkdir(dir)
    const names = await fs.readdir(dir)
    for (const name of names) if (name.endsWith('.tmp')) await fs.unlink(join(dir, name))
    const bases = names
      .map((name) => segmentNamePattern.exec(name)?.[1])
      .filter((base): base is string => base !== undefined)
      .map(Number)
      .sort((a, b) => a - b)
    if (bases.length === 0) {
      await this.createSegment(this.options.initialOffset ?? 0)
      return
    }
    for (let i = 0; i < bases.length; i++) {
      const segment = this.segment(bases[i]!)
      const previous = this.segments[this.segments.length - 1]
      if (previous !== undefined && previous.nextOffset !== segment.baseOffset) {
        throw sluiceError(
          ErrorCode.Corrupt,
          `segment ${segment.logPath} starts at offset ${segment.baseOffset} but the one before it ends at ${previous.nextOffset}: ` +
            'records are missing; restore the data directory from a backup',
          { details: { path: segment.logPath } },
        )
      }
      if (i < bases.length - 1) await this.loadSealed(segment)
      else await this.loadTail(segment)
      this.segments.push(segment)
    }
    await this.collectSealed()
  }

  private async loadSealed(segment: Segment): Promise<void> {
    const { fs } = this.options
    const file = await fs.open(segment.logPath, 'read')
    segment.file = file
    const logBytes = await file.size()
    let decoded: ReturnType<typeof SegmentIndex.decode>
    try {
      decoded = SegmentIndex.decode(await fs.readFile(segment.indexPath), segment.baseOffset, logBytes)
    } catch {
      decoded = undefined
    }
    if (decoded !== undefined) {
      this.adopt(segment, decoded.index, decoded.summary)
      return
    }
    const scan = await scanSegment(file, segment.baseOffset, false)
    this.adopt(segment, scan.index, scan.summary)
    await fs.writeFileAtomic(segment.indexPath, scan.index.encode(scan.summary))
  }

  private noteRecent(record: LogRecord, producersSince: number): void {
    const idCounts = record.idFromProducer && record.timestamp >= (this.options.recentSinceMs ?? Infinity)
    const producerCounts = record.producerId !== '' && record.timestamp >= producersSince
    if (!idCounts && !producerCounts) return
    this.recentRecords.push({
      id: record.id,
      idFromProducer: idCounts,
      producerId: producerCounts ? record.producerId : '',
      sequence: record.sequence,
      offset: record.offset,
      timestamp: record.timestamp,
    })
  }

  /**
   * Adds the records of sealed segments written within `recentSinceMs` or
   * `producersSinceMs` to recentRecords, before the tail's: a window is a
   * time, and a small segment size or a burst of traffic can seal the
   * segment of a message published a moment ago.
   */
  private async collectSealed(): Promise<void> {
    const producersSince = this.options.producersSinceMs ?? Infinity
    const since = Math.min(this.options.recentSinceMs ?? Infinity, producersSince)
    if (since === Infinity) return
    const tail = this.recentRecords
    this.recentRecords = []
    await this.visit(this.segments.slice(0, -1), since, (record) => this.noteRecent(record, producersSince))
    for (const record of tail) this.recentRecords.push(record)
  }

  /**
   * Calls `visit` with every record, oldest first, of the segments holding
   * records stored at or after `sinceMs` (ms): each segment knows the time of
   * its newest record, so older ones are not read. What was stored during
   * the scan may be left out.
   */
  scanSince(sinceMs: number, visit: (record: LogRecord) => void): Promise<void> {
    return this.visit([...this.segments], sinceMs, visit)
  }

  private async visit(
    segments: readonly Segment[],
    sinceMs: number,
    visit: (record: LogRecord) => void,
  ): Promise<void> {
    for (const segment of segments) {
      if (segment.lastTimestamp < sinceMs || segment.deleted) continue
      const wasOpen = segment.file !== null
      const end = segment.nextOffset
      for (let from = segment.baseOffset; from < end;) {
        // No further than this segment: a read goes on into the next ones, which the loop visits in turn.
        const records = await this.read(from, Math.min(scanBatchRecords, end - from))
        if (records.length === 0) break
        for (const record of records) if (record.offset < end) visit(record)
        from = records[records.length - 1]!.offset + 1
      }
      // A scan of many small sealed segments must not leave a descriptor open for each.
      if (!wasOpen && segment !== this.segments.at(-1) && segment.readers === 0) await this.closeFile(segment)
    }
  }

  private async loadTail(segment: Segment): Promise<void> {
    const file = await this.options.fs.open(segment.logPath, 'write')
    segment.file = file
    const scan = await scanSegment(
      file,
      segment.baseOffset,
      true,
      (record) => this.noteRecent(record, 0),
      this.options.maxUnsyncedBytes,
    )
    this.adopt(segment, scan.index, scan.summary)
    if (scan.tornBytes > 0) await file.truncate(scan.summary.logBytes)
    // What a killed process left in the page cache is made durable now, so the unsynced end starts empty.
    if (this.options.durability !== 'none') await file.sync()
    segment.syncedBytes = scan.summary.logBytes
    if (scan.tornBytes > 0) {
      this.recovery = {
        path: segment.logPath,
        cutBytes: scan.tornBytes,
        reason: scan.tornReason ?? 'torn tail',
        nextOffset: scan.summary.nextOffset,
      }
    }
  }

  private adopt(
    segment: Segment,
    index: SegmentIndex,
    summary: { nextOffset: number; logBytes: number; lastTimestamp: number },
  ): void {
    ;(segment as { index: SegmentIndex }).index = index
    segment.nextOffset = summary.nextOffset
    segment.logBytes = summary.logBytes
    segment.lastTimestamp = summary.lastTimestamp
  }

  private async createSegment(baseOffset: number): Promise<void> {
    const segment = this.segment(baseOffset)
    segment.file = await this.options.fs.open(segment.logPath, 'create')
    await this.options.fs.syncDir(this.options.dir)
    this.segments.push(segment)
  }

  append(drafts: readonly RecordDraft[]): Promise<LogRecord[]> {
    if (this.failure !== null) return Promise.reject(this.failure)
    if (this.closed) return Promise.reject(sluiceError(ErrorCode.Closed, `log ${this.options.dir} is closed`))
    if (drafts.length === 0) return Promise.resolve([])
    const sizes = new Array<number>(drafts.length)
    const payloadAts = new Array<number>(drafts.length)
    let total = 0
    for (let i = 0; i < drafts.length; i++) {
      const size = encodedSize(drafts[i]!)
      sizes[i] = size
      total += size
    }
    const buf = Buffer.allocUnsafe(total)
    for (let i = 0, at = 0; i < drafts.length; at += sizes[i]!, i++)
      payloadAts[i] = encodeBody(buf, at, sizes[i]!, drafts[i]!)
    return new Promise((resolve, reject) => {
      this.pending.push({ drafts, buf, sizes, payloadAts, resolve, reject })
      if (!this.flushQueued) {
        this.flushQueued = true
        setImmediate(() => void this.exclusive(() => this.flush()))
      }
    })
  }

  /** Runs write-side work one job at a time (batches, rolls, retention). */
  private exclusive<T>(job: () => Promise<T>): Promise<T> {
    const run = this.chain.then(job)
    this.chain = run.then(
      () => undefined,
      () => undefined,
    )
    return run
  }

  private async flush(): Promise<void> {
    this.flushQueued = false
    // Take appends up to maxWriteBytes (at least one); the rest go in the next write, so that
    // producers woken by this write can encode new appends while it runs.
    let take = 0
    let bytes = 0
    while (take < this.pending.length && (take === 0 || bytes + this.pending[take]!.buf.length <= maxWriteBytes)) {
      bytes += this.pending[take]!.buf.length
      take++
    }
    const batch = this.pending.splice(0, take)
    if (this.pending.length > 0) {
      // flushQueued was cleared above: queue the rest as the next write.
      this.flushQueued = true
      void this.exclusive(() => this.flush())
    }
    if (batch.length === 0) return
    if (this.failure !== null) {
      for (const p of batch) p.reject(this.failure)
      return
    }
    try {
      const stored = await this.writeBatch(batch)
      let at = 0
      for (const p of batch) {
        p.resolve(stored.slice(at, at + p.drafts.length))
        at += p.drafts.length
      }
      for (const listener of this.listeners) listener(this.endOffset)
    } catch (err) {
      for (const p of batch) p.reject(err)
    }
  }

  private async writeBatch(batch: readonly PendingAppend[]): Promise<LogRecord[]> {
    let total = 0
    let count = 0
    for (const p of batch) {
      total += p.buf.length
      count += p.drafts.length
    }
    if (this.active.logBytes > 0 && this.active.logBytes + total > this.options.segmentBytes) {
      await this.roll()
    }
    const segment = this.active
    const file = segment.file!
    const timestamp = this.options.clock.now()
    const firstOffset = segment.nextOffset
    let offset = firstOffset
    for (const p of batch) {
      for (let i = 0, at = 0; i < p.sizes.length; at += p.sizes[i]!, i++)
        stampRecord(p.buf, at, p.sizes[i]!, offset++, timestamp)
    }
    const writeAt = segment.logBytes
    const window = this.options.maxUnsyncedBytes ?? maxUnsyncedBytes
    let at = writeAt
    for (const buffers of total <= window ? [batch.map((p) => p.buf)] : piecesOf(batch, window)) {
      let bytes = 0
      for (const b of buffers) bytes += b.length
      if (this.options.durability !== 'fsync' && at + bytes - segment.syncedBytes > window) {
        // Never more than `window` unsynced at the end: recovery counts on it.
        await this.syncSegment(segment, at)
      }
      try {
        // Never block the event loop on a file being fsynced: a write to a page under writeback waits for it.
        if (bytes <= syncWriteBytes && this.syncsInFlight === 0) file.writevSync(buffers, at)
        else await file.writev(buffers, at)
      } catch (err) {
        throw await this.writeFailed(file, writeAt, err)
      }
      at += bytes
      if (this.options.durability === 'fsync') await this.syncSegment(segment, at)
      else {
        this.dirty = true
        // Half the window unsynced: fsync now in the background, before writers have to wait for one.
        if (at - segment.syncedBytes > window / 2 && this.syncsInFlight === 0)
          void backgroundSync(() => this.sync()).catch(() => undefined)
      }
    }
    const records = new Array<LogRecord>(count)
    let position = writeAt
    offset = firstOffset
    for (const p of batch) {
      for (let i = 0, at = 0; i < p.sizes.length; at += p.sizes[i]!, i++) {
        const draft = p.drafts[i]!
        segment.index.note(offset, position + at)
        records[offset - firstOffset] = storedRecord(
          draft,
          offset,
          timestamp,
          p.buf.subarray(p.payloadAts[i], at + p.sizes[i]!),
        )
        offset++
      }
      position += p.buf.length
    }
    segment.logBytes += total
    segment.nextOffset += count
    segment.lastTimestamp = timestamp
    this.cache.add(records, total)
    return records
  }

  /** A failed write: cut it off again; if that works and the disk is full, the log stays usable. */
  private async writeFailed(file: LogFile, size: number, err: unknown): Promise<SluiceError> {
    try {
      await file.truncate(size)
    } catch (truncateErr) {
      return this.fail(`write to ${file.path} failed and could not be undone (${String(truncateErr)})`, err)
    }
    if (isDiskFull(err)) {
      return sluiceError(
        ErrorCode.StorageFull,
        `the disk holding ${this.options.dir} is full: nothing was stored; free space and publish again`,
        {
          cause: err,
          details: { path: file.path, errno: errno(err) },
        },
      )
    }
    return this.fail(`write to ${file.path} failed`, err)
  }

  private fail(what: string, err: unknown): SluiceError {
    if (this.failure === null) {
      this.failure = sluiceError(
        ErrorCode.StorageFailed,
        `${what} (${errno(err) ?? String(err)}); this partition refuses writes until the data directory is reopened, because after a failed fsync the disk's contents are unknown`,
        { cause: err, details: { dir: this.options.dir, errno: errno(err) } },
      )
    }
    return this.failure
  }

  /** Seals the active segment (fsync, index file) and starts a new one at the next offset. */
  private async roll(): Promise<void> {
    const sealed = this.active
    try {
      await sealed.file!.sync()
    } catch (err) {
      throw this.fail(`fsync of ${sealed.logPath} failed`, err)
    }
    try {
      await this.options.fs.writeFileAtomic(sealed.indexPath, sealed.index.encode(sealed))
      await this.createSegment(sealed.nextOffset)
    } catch (err) {
      if (isDiskFull(err)) {
        throw sluiceError(
          ErrorCode.StorageFull,
          `the disk holding ${this.options.dir} is full: could not start a new segment; free space and publish again`,
          { cause: err },
        )
      }
      throw this.fail(`starting a new segment in ${this.options.dir} failed`, err)
    }
  }

  private scheduleIntervalSync(): void {
    const timer = setInterval(
      () => void backgroundSync(() => this.sync()).catch(() => undefined),
      this.options.fsyncIntervalMs,
    )
    timer.unref()
    this.stopSyncTimer = () => clearInterval(timer)
  }

  async sync(): Promise<void> {
    if (!this.dirty || this.failure !== null) return
    this.dirty = false
    const segment = this.active
    await this.syncSegment(segment, segment.logBytes)
  }

  /** fsyncs `segment`, whose first `written` bytes are then durable. */
  private async syncSegment(segment: Segment, written: number): Promise<void> {
    const file = segment.file!
    this.syncsInFlight++
    try {
      await file.sync()
    } catch (err) {
      throw this.fail(`fsync of ${file.path} failed`, err)
    } finally {
      this.syncsInFlight--
    }
    segment.syncedBytes = Math.max(segment.syncedBytes, written)
  }

  onAppend(listener: (endOffset: number) => void): () => void {
    this.listeners.add(listener)
    return () => this.listeners.delete(listener)
  }

  async read(from: number, max: number): Promise<LogRecord[]> {
    if (this.closed) throw sluiceError(ErrorCode.Closed, `log ${this.options.dir} is closed`)
    const start = Math.max(from, this.startOffset)
    const end = this.endOffset
    if (start >= end || max <= 0) return []
    const cached = this.cache.read(start, max)
    if (cached !== undefined) return cached
    const out: LogRecord[] = []
    let next = start
    while (out.length < max && next < end) {
      const segment = this.findSegment(next)
      if (segment === undefined) break
      segment.readers++
      try {
        next = await this.readSegment(segment, next, max - out.length, out)
      } finally {
        segment.readers--
        if (segment.deleted && segment.readers === 0) await this.closeFile(segment)
      }
      // The rest may have come into the cache meanwhile.
      const more = out.length < max ? this.cache.read(next, max - out.length) : undefined
      if (more !== undefined) {
        for (const record of more) out.push(record)
        break
      }
    }
    return out
  }

  private findSegment(offset: number): Segment | undefined {
    let lo = 0
    let hi = this.segments.length - 1
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1
      if (this.segments[mid]!.baseOffset <= offset) lo = mid
      else hi = mid - 1
    }
    const segment = this.segments[lo]
    return segment !== undefined && offset >= segment.baseOffset && offset < segment.nextOffset ? segment : undefined
  }

  /** Reads records from `from` within one segment into `out`; returns the next offset to read. */
  private async readSegment(segment: Segment, from: number, max: number, out: LogRecord[]): Promise<number> {
    segment.file ??= await this.options.fs.open(segment.logPath, 'read')
    const file = segment.file
    const limit = segment.logBytes
    const stopAt = segment.nextOffset
    let position = segment.index.positionFor(from)
    let next = from
    // Size reads to what is asked for (the segment's mean record size times max, plus the index's gap).
    const records = Math.max(1, segment.nextOffset - segment.baseOffset)
    const want = Math.ceil((segment.logBytes / records) * (max + 1)) + indexIntervalBytes
    // Never more than the segment holds from here: scanning thousands of small segments must not allocate 16 KiB each.
    let chunk = Buffer.allocUnsafe(Math.min(readChunkBytes, Math.max(16 * 1024, want), Math.max(1, limit - position)))
    while (position < limit && next < stopAt && max > 0) {
      const want = Math.min(chunk.length, limit - position)
      const got = await file.read(chunk, position, want)
      if (got === 0) break
      let p = 0
      while (p < got && next < stopAt && max > 0) {
        const result = decodeRecord(chunk, p, got)
        if (!result.ok) {
          if (result.problem === DecodeProblem.Incomplete && p > 0) break
          if (result.problem === DecodeProblem.Incomplete && result.size > chunk.length) {
            chunk = Buffer.allocUnsafe(result.size)
            break
          }
          throw sluiceError(
            ErrorCode.Corrupt,
            `segment ${segment.logPath} is damaged at byte ${position + p} (${result.problem}); Sluice does not skip stored data: restore the file from a backup`,
            { details: { path: segment.logPath, position: position + p, problem: result.problem } },
          )
        }
        if (result.record.offset >= next) {
          if (result.record.offset !== next) {
            throw sluiceError(
              ErrorCode.Corrupt,
              `segment ${segment.logPath} holds offset ${result.record.offset} where ${next} was expected`,
              {
                details: { path: segment.logPath, position: position + p },
              },
            )
          }
          out.push(result.record)
          next++
          max--
        }
        p += result.size
      }
      position += p
      // A new buffer each time: the records handed out are views into the old one.
      chunk = Buffer.allocUnsafe(chunk.length)
    }
    return next
  }

  private async closeFile(segment: Segment): Promise<void> {
    const file = segment.file
    segment.file = null
    if (file !== null) await file.close()
  }

  applyRetention(policy: RetentionPolicy): Promise<RetentionResult> {
    return this.exclusive(async () => {
      let deletedMessages = 0
      if (this.closed || this.failure !== null) return { deletedMessages, startOffset: this.startOffset }
      // Seal an active segment that is wholly expired or consumed once the topic has gone quiet, so its
      // data can go too. Not while it is being written: a roll costs fsyncs that appends would wait behind.
      // Size retention never takes the active segment: that would delete everything.
      const active = this.active
      const quiet = active.lastTimestamp < policy.now - quietRollMs
      if (active.nextOffset > active.baseOffset && quiet && this.expiredOrConsumed(active, policy)) await this.roll()
      let total = this.bytes
      while (this.segments.length > 1) {
        const oldest = this.segments[0]!
        const overSize = policy.maxBytes !== null && total > policy.maxBytes
        if (!overSize && !this.expiredOrConsumed(oldest, policy)) break
        this.segments.shift()
        total -= oldest.logBytes
        oldest.deleted = true
        deletedMessages += oldest.nextOffset - oldest.baseOffset
        await this.options.fs.unlink(oldest.logPath)
        await this.options.fs.unlink(oldest.indexPath).catch(() => undefined)
        if (oldest.readers === 0) await this.closeFile(oldest)
      }
      this.cache.dropBefore(this.startOffset)
      return { deletedMessages, startOffset: this.startOffset }
    })
  }

  private expiredOrConsumed(segment: Segment, policy: RetentionPolicy): boolean {
    if (policy.consumedBefore !== null && segment.nextOffset <= policy.consumedBefore) return true
    return policy.maxAgeMs !== null && segment.lastTimestamp < policy.now - policy.maxAgeMs
  }

  async close(): Promise<void> {
    if (this.closed) return
    // Let queued appends land first: close resolves once in-flight work has settled.
    await this.exclusive(() => this.flush())
    this.closed = true
    this.stopSyncTimer?.()
    await this.chain
    if (this.failure === null && this.dirty) await this.sync().catch(() => undefined)
    for (const segment of this.segments) await this.closeFile(segment)
    // Gives the bytes back to a shared budget.
    this.cache.clear()
  }
}

/**
 * A batch cut at record boundaries into pieces of at most `window` bytes (a
 * record bigger than that is a piece of its own), for batches too big to
 * leave unsynced at once.
 */
function piecesOf(batch: readonly PendingAppend[], window: number): Uint8Array[][] {
  const pieces: Uint8Array[][] = []
  let piece: Uint8Array[] = []
  let bytes = 0
  for (const p of batch) {
    for (let i = 0, at = 0; i < p.sizes.length; at += p.sizes[i]!, i++) {
      const size = p.sizes[i]!
      if (bytes > 0 && bytes + size > window) {
        pieces.push(piece)
        piece = []
        bytes = 0
      }
      piece.push(p.buf.subarray(at, at + size))
      bytes += size
    }
  }
  if (piece.length > 0) pieces.push(piece)
  return pieces
}
