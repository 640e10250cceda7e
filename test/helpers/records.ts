import { PayloadFormat } from '../../src/core/codec.ts'
import type { AppendRecord } from '../../src/core/types.ts'

/** A record for the engine's `append`, its payload the id's bytes unless given. */
export function appendRecord(id: string, more: Partial<AppendRecord> = {}): AppendRecord {
  return {
    id,
    key: null,
    headers: {},
    payload: Buffer.from(id),
    format: PayloadFormat.Bytes,
    deliverAt: 0,
    ...more,
  }
}
