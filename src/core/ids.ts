import { randomFillSync } from 'node:crypto'

/**
 * Time-ordered message ids (UUIDv7, RFC 9562): 48 bits of Unix milliseconds,
 * then a 12-bit counter that keeps ids generated in the same millisecond in
 * order, then random bits. Random bytes come from a pool refilled in bulk,
 * because one `randomUUID`-style call per message is too slow for a queue.
 */

const hex: string[] = Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'))
const pool = Buffer.alloc(16 * 256)
let poolPosition = pool.length
let lastMs = -1
let counter = 0

function randomBytes10(): number {
  if (poolPosition + 10 > pool.length) {
    randomFillSync(pool)
    poolPosition = 0
  }
  const at = poolPosition
  poolPosition += 10
  return at
}

/** A new UUIDv7 string; ids from one process sort in generation order. */
export function uuidv7(nowMs: number = Date.now()): string {
  if (nowMs > lastMs) {
    lastMs = nowMs
    counter = 0
  } else {
    counter++
    if (counter > 0xfff) {
      // Counter exhausted in this millisecond: borrow the next one, as RFC 9562 allows.
      lastMs++
      counter = 0
    }
  }
  const ms = lastMs
  const r = randomBytes10()
  const b0 = Math.floor(ms / 2 ** 40) & 0xff
  const b1 = Math.floor(ms / 2 ** 32) & 0xff
  const b2 = (ms >>> 24) & 0xff
  const b3 = (ms >>> 16) & 0xff
  const b4 = (ms >>> 8) & 0xff
  const b5 = ms & 0xff
  const b6 = 0x70 | (counter >>> 8)
  const b7 = counter & 0xff
  const b8 = 0x80 | (pool[r]! & 0x3f)
  return (
    hex[b0]! +
    hex[b1]! +
    hex[b2]! +
    hex[b3]! +
    '-' +
    hex[b4]! +
    hex[b5]! +
    '-' +
    hex[b6]! +
    hex[b7]! +
    '-' +
    hex[b8]! +
    hex[pool[r + 1]!]! +
    '-' +
    hex[pool[r + 2]!]! +
    hex[pool[r + 3]!]! +
    hex[pool[r + 4]!]! +
    hex[pool[r + 5]!]! +
    hex[pool[r + 6]!]! +
    hex[pool[r + 7]!]!
  )
}
