/**
 * Fuzzes the frame parser (src/protocol/frame.ts): random bytes, valid frames
 * with random damage, oversized length fields, all pushed in random pieces.
 * Whatever it is fed, the parser returns frames or throws a SluiceError with
 * code PROTOCOL: never another exception, never a hang, never a frame that
 * depends on how the bytes were split.
 *
 *   node --import tsx scripts/fuzz-frames.ts [numRuns] [--seed <n>] [--path <p>] [--only <property>]
 *
 * numRuns (default 2,000,000) is shared among the properties. A failure is
 * printed with its seed and path; run again with them (and --only) to replay
 * it. A case that runs for more than 10 s is reported as a hang and the
 * process is killed. src/protocol/frame.test.ts runs the same properties
 * with fewer cases.
 */
import assert from 'node:assert/strict'
import { resolve } from 'node:path'
import { pathToFileURL } from 'node:url'
import { parseArgs } from 'node:util'
import { Worker } from 'node:worker_threads'
import fc from 'fast-check'
import { ErrorCode, SluiceError } from '../src/core/errors.ts'
import { defaultMaxFrameBytes, encodeFrame, FrameKind, FrameParser, type Frame } from '../src/protocol/frame.ts'

const frameKinds = Object.values(FrameKind)

/** What the parser made of a byte string fed in pieces. */
export interface ParseOutcome {
  readonly frames: Frame[]
  /** The PROTOCOL error that stopped it, if any. */
  readonly error: SluiceError | null
  /** Index of the piece whose push threw. */
  readonly failedPiece: number | null
  readonly pendingBytes: number
  /** pendingBytes just before each push. */
  readonly pendingBefore: number[]
}

/** Cuts `bytes` at the given points (any naturals: taken modulo length + 1, sorted, deduplicated). */
export function splitAt(bytes: Uint8Array, cuts: readonly number[]): Buffer[] {
  const whole = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const points = [...new Set(cuts.map((c) => c % (whole.length + 1)))].sort((a, b) => a - b)
  const pieces: Buffer[] = []
  let from = 0
  for (const point of points) {
    pieces.push(whole.subarray(from, point))
    from = point
  }
  pieces.push(whole.subarray(from))
  return pieces
}

/** Every byte on its own. */
export function bytewise(bytes: Uint8Array): Buffer[] {
  const whole = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const pieces: Buffer[] = []
  for (let i = 0; i < whole.length; i++) pieces.push(whole.subarray(i, i + 1))
  return pieces
}

/**
 * Pushes the pieces into a fresh parser until one throws. Anything thrown
 * other than a SluiceError with code PROTOCOL fails the property.
 */
export function parsePieces(pieces: readonly Buffer[], maxFrameBytes: number): ParseOutcome {
  const parser = new FrameParser(maxFrameBytes)
  const frames: Frame[] = []
  const pendingBefore: number[] = []
  for (const [i, piece] of pieces.entries()) {
    pendingBefore.push(parser.pendingBytes)
    try {
      frames.push(...parser.push(piece))
      // Frames complete before a bad one come back first; the error is kept for the next call.
      parser.throwIfFailed()
    } catch (err) {
      if (!(err instanceof SluiceError) || err.code !== ErrorCode.Protocol) {
        throw new assert.AssertionError({
          message: `the parser threw something other than a PROTOCOL SluiceError: ${describeError(err)}`,
        })
      }
      return { frames, error: err, failedPiece: i, pendingBytes: parser.pendingBytes, pendingBefore }
    }
  }
  return { frames, error: null, failedPiece: null, pendingBytes: parser.pendingBytes, pendingBefore }
}

function describeError(err: unknown): string {
  if (err instanceof Error)
    return `${err.constructor.name}: ${err.message}${'code' in err ? ` (${String(err.code)})` : ''}`
  return `${typeof err}: ${String(err)}`
}

/**
 * A string that is equal for two decoded values exactly when they are the
 * same value: unlike deepEqual it copes with cycles, Invalid Dates and the
 * other things msgpackr can decode from random bytes.
 */
export function canonical(value: unknown): string {
  const seen = new Map<object, number>()
  const walk = (v: unknown): string => {
    if (v === null) return 'null'
    switch (typeof v) {
      case 'number':
        return Object.is(v, -0) ? '-0' : String(v)
      case 'bigint':
        return `${v}n`
      case 'string':
        return JSON.stringify(v)
      case 'boolean':
      case 'undefined':
        return String(v)
      case 'symbol':
      case 'function':
        return `<${typeof v}>`
    }
    const object = v
    const ref = seen.get(object)
    if (ref !== undefined) return `<ref ${ref}>`
    seen.set(object, seen.size)
    const type = Object.prototype.toString.call(object)
    if (ArrayBuffer.isView(object)) {
      return `${type}(${Buffer.from(object.buffer, object.byteOffset, object.byteLength).toString('hex')})`
    }
    if (object instanceof ArrayBuffer) return `${type}(${Buffer.from(object).toString('hex')})`
    if (object instanceof Date) return `Date(${object.getTime()})`
    if (object instanceof RegExp) return String(object)
    if (object instanceof Error) return `${object.name}(${JSON.stringify(object.message)}, ${walk(object.cause)})`
    if (object instanceof Map) return `Map{${[...object].map(([k, x]) => `${walk(k)}=>${walk(x)}`).join(',')}}`
    if (object instanceof Set) return `Set{${[...object].map(walk).join(',')}}`
    if (Array.isArray(object)) return `[${object.map(walk).join(',')}]`
    const entries = Object.entries(object).map(([k, x]) => `${JSON.stringify(k)}:${walk(x)}`)
    return `${type}{${entries.join(',')}}`
  }
  return walk(value)
}

export function canonicalFrames(frames: readonly Frame[]): string[] {
  return frames.map((f) => `${f.kind}/${f.id}/${canonical(f.body)}`)
}

/**
 * Parses `bytes` three ways (one push, one byte per push, split at `cuts`)
 * and checks that they agree: the same frames, the same outcome, the same
 * bytes left pending. Byte by byte is the reference, since a push that
 * throws loses the frames it completed before the bad one.
 */
export function checkConsistent(bytes: Uint8Array, cuts: readonly number[], maxFrameBytes: number): ParseOutcome {
  const reference = parsePieces(bytewise(bytes), maxFrameBytes)
  const whole = parsePieces([Buffer.from(bytes)], maxFrameBytes)
  const split = parsePieces(splitAt(bytes, cuts), maxFrameBytes)
  const expected = canonicalFrames(reference.frames)
  for (const [name, outcome] of [
    ['in one push', whole],
    ['split', split],
  ] as const) {
    assert.equal(outcome.error === null, reference.error === null, `${name}: threw unlike byte by byte`)
    const got = canonicalFrames(outcome.frames)
    if (reference.error === null) {
      assert.deepEqual(got, expected, `${name}: other frames than byte by byte`)
      assert.equal(outcome.pendingBytes, reference.pendingBytes, `${name}: other pendingBytes than byte by byte`)
    } else {
      assert.deepEqual(got, expected.slice(0, got.length), `${name}: frames before the error differ`)
    }
  }
  return reference
}

/** Bodies that survive MessagePack exactly (no undefined, -0, lone surrogates or `__proto__` keys). */
export const bodyArbitrary: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null),
    fc.boolean(),
    fc.integer(),
    fc.maxSafeInteger(),
    fc.double().filter((d) => !Object.is(d, -0)),
    fc.string({ unit: 'grapheme', maxLength: 20 }),
    fc.uint8Array({ maxLength: 40 }).map((b) => Buffer.from(b)),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(
      fc.string({ maxLength: 8 }).filter((k) => k !== '__proto__'),
      tie('value'),
      { maxKeys: 5, noNullPrototype: true },
    ),
  ),
})).value

export const frameArbitrary: fc.Arbitrary<Frame> = fc.record(
  {
    kind: fc.constantFrom(...frameKinds),
    id: fc.nat({ max: 0xffffffff }),
    body: bodyArbitrary,
  },
  { noNullPrototype: true },
)

/** Frames whose whole length field is at most 9 (fits any limit of 16 or more). */
const tinyFrameArbitrary: fc.Arbitrary<Frame> = fc.record(
  {
    kind: fc.constantFrom(...frameKinds),
    id: fc.nat({ max: 0xffffffff }),
    body: fc.oneof(fc.constant(null), fc.boolean(), fc.integer({ min: -32, max: 127 }), fc.string({ maxLength: 3 })),
  },
  { noNullPrototype: true },
)

export function encodeFrames(frames: readonly Frame[]): Buffer {
  return Buffer.concat(frames.map((f) => encodeFrame(f.kind, f.id, f.body)))
}

const cutsArbitrary = fc.array(fc.nat(), { maxLength: 10 })
const u32 = fc.nat({ max: 0xffffffff })

type Mutation =
  | { readonly op: 'flip'; readonly at: number; readonly xor: number }
  | { readonly op: 'truncate'; readonly at: number }
  | { readonly op: 'extend'; readonly bytes: Uint8Array }
  | { readonly op: 'insert'; readonly at: number; readonly byte: number }
  | { readonly op: 'delete'; readonly at: number }
  | { readonly op: 'setLength'; readonly frame: number; readonly length: number }
  | { readonly op: 'swapLengths'; readonly a: number; readonly b: number }
  | { readonly op: 'setKind'; readonly frame: number; readonly kind: number }

function mutationArbitrary(maxFrameBytes: number): fc.Arbitrary<Mutation> {
  return fc.oneof(
    fc.record({ op: fc.constant('flip' as const), at: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
    fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
    fc.record({
      op: fc.constant('extend' as const),
      bytes: fc.uint8Array({ minLength: 1, maxLength: 24, size: 'medium' }),
    }),
    fc.record({ op: fc.constant('insert' as const), at: fc.nat(), byte: fc.nat({ max: 255 }) }),
    fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
    fc.record({
      op: fc.constant('setLength' as const),
      frame: fc.nat(),
      length: fc.oneof(
        fc.integer({ min: 0, max: 8 }),
        fc.constantFrom(maxFrameBytes, maxFrameBytes + 1, 0xffffffff, 0x7fffffff, 0x80000000),
        u32,
      ),
    }),
    fc.record({ op: fc.constant('swapLengths' as const), a: fc.nat(), b: fc.nat() }),
    fc.record({ op: fc.constant('setKind' as const), frame: fc.nat(), kind: fc.nat({ max: 255 }) }),
  )
}

/** Applies the mutations in order; frame offsets are those of the undamaged frames. */
function mutate(original: Buffer, offsets: readonly number[], mutations: readonly Mutation[]): Buffer {
  let bytes: Buffer = Buffer.from(original)
  const frameAt = (i: number): number => offsets[i % offsets.length]!
  for (const m of mutations) {
    switch (m.op) {
      case 'flip':
        if (bytes.length > 0) bytes[m.at % bytes.length]! ^= m.xor
        break
      case 'truncate':
        bytes = bytes.subarray(0, m.at % (bytes.length + 1))
        break
      case 'extend':
        bytes = Buffer.concat([bytes, m.bytes])
        break
      case 'insert': {
        const at = m.at % (bytes.length + 1)
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.of(m.byte), bytes.subarray(at)])
        break
      }
      case 'delete': {
        if (bytes.length === 0) break
        const at = m.at % bytes.length
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1)])
        break
      }
      case 'setLength': {
        const at = frameAt(m.frame)
        if (at + 4 <= bytes.length) bytes.writeUInt32BE(m.length, at)
        break
      }
      case 'swapLengths': {
        const a = frameAt(m.a)
        const b = frameAt(m.b)
        if (a + 4 <= bytes.length && b + 4 <= bytes.length) {
          const la = bytes.readUInt32BE(a)
          bytes.writeUInt32BE(bytes.readUInt32BE(b), a)
          bytes.writeUInt32BE(la, b)
        }
        break
      }
      case 'setKind': {
        const at = frameAt(m.frame) + 4
        if (at < bytes.length) bytes[at] = m.kind
        break
      }
    }
  }
  return bytes
}

/** A property and its share of the runs. */
export interface FuzzProperty {
  readonly name: string
  readonly share: number
  readonly property: fc.IProperty<unknown>
}

const limits = [8, 64, 1024, defaultMaxFrameBytes]

/**
 * The fuzz properties. `onCase` is called at the start of every case (the
 * script's hang detector counts them).
 */
export function frameFuzzProperties(onCase: () => void = () => undefined): FuzzProperty[] {
  const randomBytes = fc.property(
    fc.uint8Array({ maxLength: 96, size: 'medium' }),
    cutsArbitrary,
    fc.constantFrom(...limits),
    (bytes, cuts, max) => {
      onCase()
      checkConsistent(bytes, cuts, max)
    },
  )

  // Random bytes behind length fields that are often in range, so the body decoder is reached.
  const headerArbitrary = fc
    .record({
      body: fc.uint8Array({ maxLength: 40, size: 'medium' }),
      lengthDelta: fc.oneof(fc.integer({ min: -6, max: 6 }), fc.constant(0)),
      randomLength: fc.option(u32, { freq: 8 }),
      kind: fc.oneof(fc.constantFrom(...frameKinds), fc.nat({ max: 255 })),
      id: u32,
    })
    .map(({ body, lengthDelta, randomLength, kind, id }) => {
      const header = Buffer.alloc(9)
      header.writeUInt32BE(randomLength ?? Math.max(0, 5 + body.length + lengthDelta), 0)
      header[4] = kind
      header.writeUInt32BE(id, 5)
      return Buffer.concat([header, body])
    })
  const randomBodies = fc.property(
    fc.array(headerArbitrary, { minLength: 1, maxLength: 4 }),
    cutsArbitrary,
    fc.constantFrom(...limits),
    (parts, cuts, max) => {
      onCase()
      checkConsistent(Buffer.concat(parts), cuts, max)
    },
  )

  const mutated = fc.property(
    fc
      .constantFrom(64, 1024, defaultMaxFrameBytes)
      .chain((max) =>
        fc.tuple(
          fc.constant(max),
          fc.array(frameArbitrary, { minLength: 1, maxLength: 4 }),
          fc.array(mutationArbitrary(max), { minLength: 1, maxLength: 4 }),
          cutsArbitrary,
        ),
      ),
    ([max, frames, mutations, cuts]) => {
      onCase()
      const encoded = frames.map((f) => encodeFrame(f.kind, f.id, f.body))
      const offsets: number[] = []
      let at = 0
      for (const e of encoded) {
        offsets.push(at)
        at += e.length
      }
      checkConsistent(mutate(Buffer.concat(encoded), offsets, mutations), cuts, max)
    },
  )

  const validSplit = fc.property(
    fc.array(frameArbitrary, { minLength: 1, maxLength: 5 }),
    fc.option(fc.tuple(frameArbitrary, fc.nat()), { freq: 2 }),
    cutsArbitrary,
    (frames, partial, cuts) => {
      onCase()
      const complete = encodeFrames(frames)
      let tail: Buffer = Buffer.alloc(0)
      if (partial !== null) {
        const [frame, cut] = partial
        const encoded = encodeFrame(frame.kind, frame.id, frame.body)
        tail = encoded.subarray(0, cut % encoded.length)
      }
      const bytes = Buffer.concat([complete, tail])
      for (const pieces of [[bytes], splitAt(bytes, cuts), bytewise(bytes)]) {
        const outcome = parsePieces(pieces, defaultMaxFrameBytes)
        assert.equal(outcome.error, null)
        assert.deepEqual(outcome.frames, frames)
        assert.equal(outcome.pendingBytes, tail.length)
      }
    },
  )

  const oversized = fc.property(
    fc
      .constantFrom(16, 1024, defaultMaxFrameBytes)
      .chain((max) =>
        fc.tuple(
          fc.constant(max),
          fc.oneof(fc.constantFrom(max + 1, 0xffffffff, 0x80000000), fc.integer({ min: max + 1, max: 0xffffffff })),
          fc.array(tinyFrameArbitrary, { maxLength: 3 }),
          fc.uint8Array({ maxLength: 64 }),
          cutsArbitrary,
        ),
      ),
    ([max, length, before, tail, cuts]) => {
      onCase()
      const prefix = encodeFrames(before)
      const field = Buffer.alloc(4)
      field.writeUInt32BE(length)
      const bytes = Buffer.concat([prefix, field, tail])
      const pieces = splitAt(bytes, cuts)
      const outcome = parsePieces(pieces, max)
      assert.ok(outcome.error !== null, `a length of ${length} (limit ${max}) was not rejected`)
      // The push that brought the last length byte is the one that threw.
      let end = 0
      let lastByteIn = -1
      for (const [i, piece] of pieces.entries()) {
        end += piece.length
        if (end >= prefix.length + 4) {
          lastByteIn = i
          break
        }
      }
      assert.equal(outcome.failedPiece, lastByteIn, 'not rejected as soon as the length field was complete')
      // Until then it held only the bytes of the frame in progress: at most 3 once the good frames were out.
      const frameEnds: number[] = []
      for (const f of before) frameEnds.push((frameEnds.at(-1) ?? 0) + encodeFrame(f.kind, f.id, f.body).length)
      let consumed = 0
      for (const [i, pending] of outcome.pendingBefore.entries()) {
        const done = frameEnds.filter((e) => e <= consumed).at(-1) ?? 0
        assert.equal(pending, consumed - done, `pendingBytes before push ${i}`)
        if (consumed >= prefix.length) assert.ok(pending <= 3, `${pending} bytes held before rejection`)
        consumed += pieces[i]!.length
      }
      // Every complete frame before the bad one came out, also those of the failing push.
      assert.deepEqual(outcome.frames, before)
    },
  )

  return [
    { name: 'random bytes', share: 0.3, property: randomBytes },
    { name: 'random bodies behind plausible headers', share: 0.25, property: randomBodies },
    { name: 'valid frames with mutations', share: 0.2, property: mutated },
    { name: 'valid frames at random split points', share: 0.1, property: validSplit },
    { name: 'oversized length fields', share: 0.15, property: oversized },
  ]
}

/** Runs of each property for a total of `totalRuns` (each gets at least one). */
export function runsOf(properties: readonly FuzzProperty[], totalRuns: number): number[] {
  return properties.map((p) => Math.max(1, Math.round(p.share * totalRuns)))
}

const hangMs = 10_000

/**
 * The hang detector: a worker that watches the case counter the main thread
 * bumps, and kills the process (printing how to replay the case) when it
 * stops moving. A synchronous hang cannot be interrupted from inside.
 */
function startWatchdog(progress: Int32Array, names: readonly string[]): Worker {
  const code = `
    const { workerData } = require('node:worker_threads')
    const { writeSync } = require('node:fs')
    const progress = new Int32Array(workerData.buffer)
    let last = -1, since = Date.now()
    setInterval(() => {
      const now = Atomics.load(progress, 0)
      if (now !== last) { last = now; since = Date.now(); return }
      if (Date.now() - since < ${hangMs}) return
      const name = workerData.names[Atomics.load(progress, 1)]
      const seed = Atomics.load(progress, 2)
      const path = Atomics.load(progress, 3)
      writeSync(2, 'HANG: "' + name + '" seed ' + seed + ' case ' + path + ' has run for over ${hangMs} ms; replay: ' +
        "node --import tsx scripts/fuzz-frames.ts 1 --only '" + name + "' --seed " + seed + ' --path ' + path + '\\n')
      process.kill(process.pid, 'SIGKILL')
    }, 500)
  `
  const worker = new Worker(code, { eval: true, workerData: { buffer: progress.buffer, names } })
  worker.unref()
  return worker
}

function main(): void {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { seed: { type: 'string' }, path: { type: 'string' }, only: { type: 'string' } },
  })
  const totalRuns = positionals[0] === undefined ? 2_000_000 : Number(positionals[0].replaceAll('_', ''))
  if (!Number.isSafeInteger(totalRuns) || totalRuns < 1) throw new Error(`numRuns must be a positive integer`)
  // [cases started, property index, seed, case index within the property]
  const progress = new Int32Array(new SharedArrayBuffer(16))
  const properties = frameFuzzProperties(() => {
    Atomics.add(progress, 0, 1)
    Atomics.add(progress, 3, 1)
  })
  const watchdog = startWatchdog(
    progress,
    properties.map((p) => p.name),
  )
  const runs = runsOf(properties, totalRuns)
  let failures = 0
  let cases = 0
  const started = performance.now()
  for (const [index, { name, property }] of properties.entries()) {
    if (values.only !== undefined && !name.includes(values.only)) continue
    const seed = values.seed === undefined ? (Math.random() * 2 ** 31) | 0 : Number(values.seed)
    Atomics.store(progress, 1, index)
    Atomics.store(progress, 2, seed)
    Atomics.store(progress, 3, values.path === undefined ? -1 : Number(values.path.split(':')[0]) - 1)
    const t0 = performance.now()
    const details = fc.check(property, {
      numRuns: runs[index]!,
      seed,
      ...(values.path === undefined ? {} : { path: values.path }),
    })
    const seconds = (performance.now() - t0) / 1000
    cases += details.numRuns
    const rate = Math.round(details.numRuns / seconds)
    console.log(
      `${details.failed ? 'FAIL' : 'ok  '} ${name}: ${details.numRuns} cases in ${seconds.toFixed(1)} s (${rate}/s), seed ${seed}`,
    )
    if (details.failed) {
      failures++
      console.log(fc.defaultReportMessage(details))
      console.log(describeError(details.errorInstance))
      console.log(
        `replay: node --import tsx scripts/fuzz-frames.ts 1 --only '${name}' --seed ${details.seed} --path '${details.counterexamplePath ?? ''}'`,
      )
    }
  }
  const seconds = (performance.now() - started) / 1000
  console.log(
    `${cases} cases in ${seconds.toFixed(1)} s (${Math.round(cases / seconds)}/s), ${failures} failing properties`,
  )
  void watchdog.terminate()
  process.exitCode = failures > 0 ? 1 : 0
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) main()
