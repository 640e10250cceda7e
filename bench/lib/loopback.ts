import { spawn } from 'node:child_process'
import { connect, type Socket } from 'node:net'

/**
 * What loopback TCP between two Node processes allows, the ceiling of any
 * broker figure: frames of 64 bytes one at a time (a write, the peer's
 * one-byte answer, the next write) and streamed (written back to back, 64 a
 * write; the peer answers once all have arrived).
 */
export interface LoopbackLimits {
  readonly roundTripsPerSec: number
  readonly streamedFramesPerSec: number
}

const frameBytes = 64
const roundTrips = 20_000
const streamed = 500_000

// The peer: answers each `r` frame with one byte; counts streamed bytes and answers once all are in.
const peer = `
const net = require('node:net')
const server = net.createServer((s) => {
  let mode = null, left = 0
  s.on('data', (d) => {
    if (mode === null) { mode = d[0]; left = Number(d.readBigUInt64LE(1)); d = d.subarray(9) }
    if (mode === 114) { for (let i = 0; i < d.length; i += ${frameBytes}) s.write('k') }
    else { left -= d.length; if (left <= 0) s.write('k') }
  })
})
server.listen(0, '127.0.0.1', () => process.stdout.write(server.address().port + '\\n'))
`

function header(mode: 'r' | 's', bytes: number): Buffer {
  const h = Buffer.alloc(9)
  h[0] = mode.charCodeAt(0)
  h.writeBigUInt64LE(BigInt(bytes), 1)
  return h
}

function connectTo(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => resolve(socket))
    socket.setNoDelay(true)
    socket.once('error', reject)
  })
}

export async function measureLoopback(): Promise<LoopbackLimits> {
  const child = spawn(process.execPath, ['-e', peer], { stdio: ['ignore', 'pipe', 'inherit'] })
  try {
    const port = await new Promise<number>((resolve) =>
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString()))),
    )
    const frame = Buffer.alloc(frameBytes, 1)
    const one = await connectTo(port)
    one.write(header('r', 0))
    let started = performance.now()
    for (let i = 0; i < roundTrips; i++) {
      const answered = new Promise((resolve) => one.once('data', resolve))
      one.write(frame)
      await answered
    }
    const roundTripsPerSec = roundTrips / ((performance.now() - started) / 1000)
    one.destroy()
    const stream = await connectTo(port)
    const done = new Promise((resolve) => stream.once('data', resolve))
    started = performance.now()
    stream.write(header('s', streamed * frameBytes))
    const batch = Buffer.concat(Array.from({ length: 64 }, () => frame))
    for (let i = 0; i < streamed; i += 64) {
      if (!stream.write(batch)) await new Promise((resolve) => stream.once('drain', resolve))
    }
    await done
    const streamedFramesPerSec = streamed / ((performance.now() - started) / 1000)
    stream.destroy()
    return { roundTripsPerSec, streamedFramesPerSec }
  } finally {
    child.kill()
  }
}
