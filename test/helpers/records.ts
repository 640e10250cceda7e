import { PayloadFormat } from '../../src/core/codec.ts'
import type { RecordDraft } from '../../src/engine/log/record.ts'
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

/** A log record draft numbered `i`, with a 1,000-byte payload: what the log tests write in bulk. */
export function numberedDraft(i: number): RecordDraft {
  return {
    id: `m-${i}`,
    deliverAt: 0,
    format: PayloadFormat.Bytes,
    key: null,
    headers: {},
    payload: Buffer.alloc(1000, i % 251),
  }
}
