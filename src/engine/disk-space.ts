import { ErrorCode, sluiceError, type SluiceError } from '../core/errors.ts'
import type { Clock } from '../core/clock.ts'
import type { FileSystem } from './log/files.ts'

/** Free space kept back from publishes by default (RabbitMQ's disk_free_limit is 50 MB). */
export const defaultDiskReserveBytes = 64 * 1024 * 1024

/**
 * Keeps publishes off the last `reserveBytes` of the disk holding the data
 * directory, so that when the disk fills, acknowledgements, transactions'
 * outputs and recovery still have room: publishes fail with STORAGE_FULL
 * (nothing stored) while reads and acks go on, and publishing resumes by
 * itself once space returns.
 *
 * Free space is measured (statfs) after every eighth of the reserve written,
 * and at most every 250 ms while publishes are being refused; so the reserve
 * can be eaten into by what is written between two measurements, never more.
 */
export class DiskSpace {
  private free = Infinity
  private writtenSinceCheck = 0
  private lastCheck = -Infinity
  private checking: Promise<void> | null = null

  constructor(
    private readonly dir: string,
    private readonly fs: FileSystem,
    private readonly clock: Clock,
    readonly reserveBytes: number,
  ) {}

  /** Measures now. */
  check(): Promise<void> {
    this.checking ??= this.fs
      .freeBytes(this.dir)
      .then(
        (free) => {
          this.free = free
        },
        () => undefined, // Unknown: keep the last figure; the writes themselves will say ENOSPC.
      )
      .finally(() => {
        this.lastCheck = this.clock.now()
        this.writtenSinceCheck = 0
        this.checking = null
      })
    return this.checking
  }

  /** True while the last measurement left room: the fast path, no waiting. */
  get roomy(): boolean {
    return this.reserveBytes <= 0 || this.free >= this.reserveBytes
  }

  /** When not `roomy`: the refusal for a publish now, or null if a new measurement finds room. */
  async refusal(): Promise<SluiceError | null> {
    if (this.roomy) return null
    if (this.clock.now() - this.lastCheck >= 250) await this.check()
    if (this.free >= this.reserveBytes) return null
    return sluiceError(
      ErrorCode.StorageFull,
      `the disk holding ${this.dir} has ${this.free} bytes free, less than the ${this.reserveBytes} kept for acknowledgements and recovery: nothing was stored; free space (or lower diskReserveBytes) and publish again`,
      { details: { dir: this.dir, freeBytes: this.free, reserveBytes: this.reserveBytes } },
    )
  }

  /** Counts bytes written to the disk; re-measures once an eighth of the reserve has gone by. */
  wrote(bytes: number): void {
    this.writtenSinceCheck += bytes
    if (this.reserveBytes > 0 && this.writtenSinceCheck >= this.reserveBytes / 8) void this.check()
  }
}
