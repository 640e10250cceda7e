import { open, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { latencyOf, newHistogram, nowNs, type Latency } from './measure.ts'

/** What the disk under `dir` allows: sequential write rate and the latency of a small write + fdatasync. */
export interface DiskLimits {
  readonly writeMBPerSec: number
  readonly fsync: Latency
  /** 1 / median fsync latency: the most separate fsynced writes per second one writer can make. */
  readonly fsyncsPerSec: number
}

export async function measureDisk(dir: string): Promise<DiskLimits> {
  const path = join(dir, 'disk-probe.bin')
  const file = await open(path, 'w')
  try {
    const chunk = Buffer.alloc(1024 * 1024, 7)
    const totalMiB = 256
    const start = performance.now()
    for (let i = 0; i < totalMiB; i++) await file.write(chunk, 0, chunk.length, i * chunk.length)
    await file.datasync()
    const seconds = (performance.now() - start) / 1000
    const small = Buffer.alloc(1100, 1)
    const h = newHistogram()
    let position = totalMiB * chunk.length
    for (let i = 0; i < 500; i++) {
      const t0 = nowNs()
      await file.write(small, 0, small.length, position)
      await file.datasync()
      h.record(Math.max(1, nowNs() - t0))
      position += small.length
    }
    const fsync = latencyOf(h)
    return { writeMBPerSec: (totalMiB * 1.048576) / seconds, fsync, fsyncsPerSec: 1000 / fsync.p50Ms }
  } finally {
    await file.close()
    await rm(path, { force: true })
  }
}
