/**
 * Partition choice, identical to Kafka's default partitioner so that a key lands
 * on the same partition number it would in Kafka: murmur2 over the key's UTF-8
 * bytes with seed 0x9747b28c, then `(hash & 0x7fffffff) % partitions`.
 */

const seed = 0x9747b28c
const m = 0x5bd1e995

/** Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), as a signed 32-bit int. */
export function murmur2(data: Uint8Array): number {
  const length = data.length
  let h = (seed ^ length) | 0
  const whole = length & ~3
  for (let i = 0; i < whole; i += 4) {
    let k = data[i]! | (data[i + 1]! << 8) | (data[i + 2]! << 16) | (data[i + 3]! << 24)
    k = Math.imul(k, m)
    k ^= k >>> 24
    k = Math.imul(k, m)
    h = Math.imul(h, m)
    h ^= k
  }
  // The fall-through tail of Kafka's switch: 3, then 2, then 1 remaining bytes.
  const rest = length & 3
  if (rest === 3) h ^= data[whole + 2]! << 16
  if (rest >= 2) h ^= data[whole + 1]! << 8
  if (rest >= 1) {
    h ^= data[whole]!
    h = Math.imul(h, m)
  }
  h ^= h >>> 13
  h = Math.imul(h, m)
  h ^= h >>> 15
  return h | 0
}

/** The partition of a key: Kafka's `toPositive(murmur2(utf8(key))) % partitions`. */
export function partitionForKey(key: string, partitions: number): number {
  return (murmur2(Buffer.from(key, 'utf8')) & 0x7fffffff) % partitions
}

/**
 * Chooses partitions: by key hash when a key is given (the empty string is a key),
 * round-robin for keyless messages.
 */
export class Partitioner {
  private next = 0

  constructor(private readonly partitions: number) {}

  choose(key: string | null | undefined): number {
    if (key !== null && key !== undefined) return partitionForKey(key, this.partitions)
    const partition = this.next
    this.next = (this.next + 1) % this.partitions
    return partition
  }
}
