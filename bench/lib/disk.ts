import { fdatasyncSync, writeSync } from 'node:fs'
import { open, rm, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { latencyOf, newHistogram, nowNs, type Latency } from './measure.ts'

/**
 * A small write + fdatasync, 500 times, four ways: the file growing with each
 * write (what an append to a fresh segment does) or overwriting space already
 * written (a preallocated, zero-filled file: what a reused WAL gets), each
 * from the main thread (fdatasyncSync) or from libuv's thread pool
 * (FileHandle.datasync, what `await` on the fs API does).
 */
export interface FsyncLimits {
  readonly growingPool: Latency
  readonly growingDirect: Latency
  readonly preallocatedPool: Latency
  readonly preallocatedDirect: Latency
}

/** What the disk under `dir` allows: sequential write rate and the latency of a small write + fdatasync. */
export interface DiskLimits {
  readonly writeMBPerSec: number
  /** A growing file from the thread pool: the figure earlier runs reported. */
  readonly fsync: Latency
  /** 1 / median fsync latency: the most separate fsynced writes per second one writer can make. */
  readonly fsyncsPerSec: number
  readonly fsyncs: FsyncLimits
}

const probeWrites = 500
const small = Buffer.alloc(1100, 1)

async function fsyncLoop(file: FileHandle, from: number, direct: boolean): Promise<Latency> {
  const h = newHistogram()
  let position = from
  for (let i = 0; i < probeWrites; i++) {
    const t0 = nowNs()
    if (direct) {
      writeSync(file.fd, small, 0, small.length, position)
      fdatasyncSync(file.fd)
    } else {
      await file.write(small, 0, small.length, position)
      await file.datasync()
    }
    h.record(Math.max(1, nowNs() - t0))
    position += small.length
  }
  return latencyOf(h)
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
    const end = totalMiB * chunk.length
    const span = probeWrites * small.length
    // Past the end (growing), then over the first MiBs written above (preallocated), each way in turn.
    const growingPool = await fsyncLoop(file, end, false)
    const preallocatedPool = await fsyncLoop(file, 0, false)
    const growingDirect = await fsyncLoop(file, end + span, true)
    const preallocatedDirect = await fsyncLoop(file, span, true)
    return {
      writeMBPerSec: (totalMiB * 1.048576) / seconds,
      fsync: growingPool,
      fsyncsPerSec: 1000 / growingPool.p50Ms,
      fsyncs: { growingPool, growingDirect, preallocatedPool, preallocatedDirect },
    }
  } finally {
    await file.close()
    await rm(path, { force: true })
  }
}

/** The four fsync probes in one line, medians (p99) in µs. */
export function describeFsyncs(f: FsyncLimits): string {
  const us = (l: Latency): string => `${Math.round(l.p50Ms * 1000)} (p99 ${Math.round(l.p99Ms * 1000)}) µs`
  return `write+fdatasync of 1,100 B: growing file ${us(f.growingPool)} from the thread pool, ${us(f.growingDirect)} direct; preallocated ${us(f.preallocatedPool)} from the thread pool, ${us(f.preallocatedDirect)} direct`
}
