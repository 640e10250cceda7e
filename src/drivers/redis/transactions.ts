import { ErrorCode, sluiceError } from '../../core/errors.ts'
import { checkMessageSizes } from '../../core/message-size.ts'
import type { CommitResult, LeaseRef, Receipt, TransactionOutput } from '../../core/types.ts'
import { appendArgs, dedupSpanMs, partitionOf } from './append-args.ts'
import { num, text } from './entries.ts'
import { Script } from './link.ts'
import type { RedisDriver, Registration } from './redis-driver.ts'
import { settleScript } from './lua/subscription.ts'
import { commitScript } from './lua/transaction.ts'

const scripts = { commit: new Script('commit', commitScript), settle: new Script('settle', settleScript) }

/** A repeat of a transaction is recognised this long (an answer lost and the commit sent again within the request timeout). */
const txWindowMs = 120_000

interface Group {
  readonly topic: string
  readonly partition: number
  readonly gen: string
  readonly items: { readonly output: number; readonly index: number }[]
}

/**
 * `ack({ publish })` on Redis. On one server: one script acknowledges the
 * input and appends every output (all keys are on that server), so both
 * happen or neither. A Redis Cluster keeps the partitions on different
 * slots, where no script may span them: there the outputs are appended
 * first and the input acknowledged after (not atomic: a crash between them
 * publishes the outputs and offers the input again). That is why the Redis
 * Cluster driver does not declare `transactions`; only redrive uses this
 * path there, and says a dead letter may then move twice.
 */
export async function commitArgs(
  driver: RedisDriver,
  input: Registration,
  subscription: string,
  gens: readonly string[],
  ref: LeaseRef,
  outputs: readonly TransactionOutput[],
  txId: string,
): Promise<CommitResult> {
  const groups = new Map<string, Group>()
  const registrations = new Map<string, Registration>()
  for (const [o, output] of outputs.entries()) {
    const registration = registrations.get(output.topic) ?? (await driver.registration(output.topic))
    registrations.set(output.topic, registration)
    checkMessageSizes(output.topic, output.records, registration.info.maxMessageBytes)
    output.records.forEach((record, index) => {
      const partition = partitionOf(record, registration.info.partitions)
      const id = `${output.topic}\0${partition}`
      let group = groups.get(id)
      if (group === undefined)
        groups.set(id, (group = { topic: output.topic, partition, gen: registration.gen, items: [] }))
      group.items.push({ output: o, index })
    })
  }
  if (driver.link.endpoint.cluster) return appendThenAck(driver, input, subscription, gens, ref, outputs)
  const now = driver.clock.now()
  const topic = input.info.name
  const inputKeys = driver.keys.subscription(topic, ref.partition, subscription)
  const keys = [...inputKeys, ...driver.keys.partition(topic, ref.partition)]
  const args: (string | number | Buffer)[] = [
    gens[ref.partition] ?? '',
    now,
    subscription,
    ref.offset,
    ref.attempt,
    txId,
    txWindowMs,
    driver.keys.wake(topic),
    ref.partition,
    groups.size,
    dedupSpanMs(input.info.dedupWindowMs),
  ]
  const ordered = [...groups.values()]
  for (const group of ordered) {
    keys.push(...driver.keys.partition(group.topic, group.partition))
    const window = registrations.get(group.topic)!.info.dedupWindowMs
    args.push(group.gen, driver.keys.wake(group.topic), group.partition, group.items.length, dedupSpanMs(window))
    // The transaction's own entry recognises a repeat: its outputs need no producer sequence entries.
    const records = group.items.map(({ output, index }) => outputs[output]!.records[index]!)
    args.push(...appendArgs(records, window, false))
  }
  const reply = await driver.link.run(scripts.commit, keys, args)
  const status = Array.isArray(reply) ? text(reply[0]) : ''
  if (status === 'lost') return { acked: false, receipts: outputs.map(() => []) }
  if (status === 'gone') {
    const group = ordered[Array.isArray(reply) ? num(reply[1]) : 0]
    throw sluiceError(
      ErrorCode.TopicNotFound,
      `topic ${JSON.stringify(group?.topic)} was deleted; nothing was acknowledged or published`,
      {
        details: { topic: group?.topic },
      },
    )
  }
  // "offset:duplicate,..." per group, in the order sent.
  const outcome = Array.isArray(reply) ? text(reply[1]) : ''
  const receipts: Receipt[][] = outputs.map((o) => new Array<Receipt>(o.records.length))
  outcome.split(';').forEach((part, g) => {
    const group = ordered[g]
    if (group === undefined) return
    part.split(',').forEach((pair, k) => {
      const item = group.items[k]
      if (item === undefined) return
      const [offset = '0', duplicate = '0'] = pair.split(':')
      receipts[item.output]![item.index] = {
        id: outputs[item.output]!.records[item.index]!.id,
        partition: group.partition,
        offset: Number(offset),
        duplicate: duplicate === '1',
      }
    })
  })
  return { acked: true, receipts }
}

async function appendThenAck(
  driver: RedisDriver,
  input: Registration,
  subscription: string,
  gens: readonly string[],
  ref: LeaseRef,
  outputs: readonly TransactionOutput[],
): Promise<CommitResult> {
  const receipts: Receipt[][] = []
  for (const output of outputs) receipts.push(await driver.append(output.topic, output.records))
  const topic = input.info.name
  const reply = await driver.link.run(scripts.settle, driver.keys.subscription(topic, ref.partition, subscription), [
    gens[ref.partition] ?? '',
    driver.clock.now(),
    'ack',
    1,
    '',
    0,
    subscription,
    driver.keys.wake(topic),
    ref.partition,
    1,
    ref.offset,
    ref.attempt,
    0,
  ])
  const acked = Array.isArray(reply) && num(reply[0]) === 1
  return { acked, receipts }
}
