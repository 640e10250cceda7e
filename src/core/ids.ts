import { randomFillSync } from 'node:crypto'

/**
 * Time-ordered message ids (UUIDv7, RFC 9562): 48 bits of Unix milliseconds,
 * then a 12-bit counter that keeps ids generated in the same millisecond in
 * order, then random bits. Random bytes come from a pool refilled in bulk,
 * and the text is written into a scratch buffer and read out once, because
 * an id is made per message and string concatenation is not free.
 */

const hexDigits = Buffer.from('0123456789abcdef', 'latin1')
const pool = Buffer.alloc(16 * 256)
let poolPosition = pool.length
const scratch = Buffer.alloc(36)
const bytes = new Uint8Array(16)
let lastMs = -1
let counter = 0

/** Byte offsets of the 16 bytes' hex pairs within the 36-character text. */
const textAt = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34]
scratch[8] = scratch[13] = scratch[18] = scratch[23] = 0x2d // '-'

/** A new UUIDv7 string; ids from one process sort in generation order. */
export function uuidv7(nowMs: number = Date.now()): string {
  if (nowMs > lastMs) {
    lastMs = nowMs
    counter = 0
  } else if (++counter > 0xfff) {
    // Counter exhausted in this millisecond: borrow the next one, as RFC 9562 allows.
    lastMs++
    counter = 0
  }
  if (poolPosition + 8 > pool.length) {
    randomFillSync(pool)
    poolPosition = 0
  }
  const ms = lastMs
  bytes[0] = Math.floor(ms / 2 ** 40) & 0xff
  bytes[1] = Math.floor(ms / 2 ** 32) & 0xff
  bytes[2] = (ms >>> 24) & 0xff
  bytes[3] = (ms >>> 16) & 0xff
  bytes[4] = (ms >>> 8) & 0xff
  bytes[5] = ms & 0xff
  bytes[6] = 0x70 | (counter >>> 8)
  bytes[7] = counter & 0xff
  bytes[8] = 0x80 | (pool[poolPosition]! & 0x3f)
  for (let i = 9; i < 16; i++) bytes[i] = pool[poolPosition + i - 8]!
  poolPosition += 8
  for (let i = 0; i < 16; i++) {
    const b = bytes[i]!
    const at = textAt[i]!
    scratch[at] = hexDigits[b >>> 4]!
    scratch[at + 1] = hexDigits[b & 0xf]!
  }
  return scratch.toString('latin1', 0, 36)
}
