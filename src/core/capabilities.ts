import { ErrorCode, sluiceError } from './errors.ts'
import {
  DeliveryGuarantee,
  Durability,
  Ordering,
  Overflow,
  type ConsumerConfig,
  type PublishOptions,
  type TopicConfig,
} from './types.ts'

export const LimitMeasure = { MaxMessages: 'maxMessages', MaxBytes: 'maxBytes' } as const
/** What a topic's `limits` may bound: the backlog's message count, or its stored bytes. */
export type LimitMeasure = (typeof LimitMeasure)[keyof typeof LimitMeasure]

export const RateLimitScope = { Topic: 'topic', Producer: 'producer' } as const
/** What a topic's `rateLimit.per` may count: one window for the topic, or one per producer. */
export type RateLimitScope = (typeof RateLimitScope)[keyof typeof RateLimitScope]

export const RetentionKind = { MaxAgeMs: 'maxAgeMs', MaxBytes: 'maxBytes' } as const
/** What a topic's `retention` may delete by: age, or size. */
export type RetentionKind = (typeof RetentionKind)[keyof typeof RetentionKind]

/**
 * What a runtime can do. Every feature a driver may lack is declared here, so
 * that core refuses an unsupported combination once, at declaration
 * (`createTopic`, `subscribe`, `publish`), with UNSUPPORTED naming the
 * capability, instead of a driver half-doing it.
 */
export interface Capabilities {
  /** Durability modes a topic may ask for. */
  readonly durability: readonly Durability[]
  readonly orderings: readonly Ordering[]
  readonly deliveries: readonly DeliveryGuarantee[]
  /** publish with delayMs / deliverAt. */
  readonly delayedDelivery: boolean
  /** Overflow modes a topic's `limits` may ask for; empty: backlog bounds are not available. */
  readonly overflow: readonly Overflow[]
  /** What `limits` may bound: the backlog's message count, its stored bytes. */
  readonly limitBy: readonly LimitMeasure[]
  /** Scopes a topic's `rateLimit.per` may ask for; empty: no rate limits. */
  readonly rateLimitScopes: readonly RateLimitScope[]
  /** A message id repeated within the topic's dedupWindowMs is stored once. */
  readonly dedupById: boolean
  /** A publish retried after a lost answer is recognised by its producer sequence and stored once. */
  readonly idempotentProducers: boolean
  /** `msg.ack({ publish })`: acknowledge and publish in one atomic step. */
  readonly transactions: boolean
  /** Listing unacknowledged messages without leasing them (`deadLetters`, `consume --peek`). */
  readonly peek: boolean
  /** Messages every subscription has acknowledged are deleted (the default retention). */
  readonly consumptionRetention: boolean
  /** Age and size retention a topic's `retention` may ask for. */
  readonly retention: readonly RetentionKind[]
}

export type CapabilityName = keyof Capabilities
/** The capabilities that list the values a runtime has (each ordering, each durability, …). */
export type ListCapability = {
  [K in CapabilityName]: Capabilities[K] extends readonly unknown[] ? K : never
}[CapabilityName]
/** The capabilities a runtime has or has not. */
export type FlagCapability = Exclude<CapabilityName, ListCapability>

/** Every value each list capability may hold, in the order they are shown. */
export const capabilityValues: { readonly [K in ListCapability]: Capabilities[K] } = {
  durability: Object.values(Durability),
  orderings: Object.values(Ordering),
  deliveries: Object.values(DeliveryGuarantee),
  overflow: Object.values(Overflow),
  limitBy: Object.values(LimitMeasure),
  rateLimitScopes: Object.values(RateLimitScope),
  retention: Object.values(RetentionKind),
}

/** What each capability means, in a few words (for `sluice check` and error messages), in the order shown. */
export const capabilityMeanings: Readonly<Record<CapabilityName, string>> = {
  durability: 'when a publish counts as stored: fsynced, fsynced every interval, or in memory',
  orderings: "subscribe's ordering: none, one per key, one per partition, one for the whole topic",
  deliveries: "subscribe's delivery; exactly-once needs transactions too",
  delayedDelivery: 'publish with delayMs or deliverAt',
  overflow: "what a publish into a full backlog does (a topic's limits.overflow)",
  limitBy: "what a topic's limits may bound: message count, stored bytes",
  rateLimitScopes: "a topic's rateLimit, per topic or per producer",
  dedupById: "a message id repeated within the topic's dedupWindowMs is stored once",
  idempotentProducers: 'a publish retried after a lost answer is stored once',
  transactions: 'ack({ publish }): acknowledge and publish in one atomic step',
  peek: 'list unacknowledged messages without leasing them (peek, deadLetters)',
  consumptionRetention: 'what every subscription acknowledged is deleted',
  retention: "a topic's retention: by age, by size, read or not",
}

/** Every capability, in the order shown. */
export const capabilityNames = Object.keys(capabilityMeanings) as readonly CapabilityName[]

const listCapabilities = new Set<string>(Object.keys(capabilityValues))

export function isListCapability(name: CapabilityName): name is ListCapability {
  return listCapabilities.has(name)
}

/** A runtime Sluice knows of, by URL, with what it declares. */
export interface KnownRuntime {
  /** The URL scheme, as `open({ url })` takes it. */
  readonly url: string
  /** What it has; null when it has what the runtime behind it has (a broker client: its broker's). */
  readonly capabilities: Capabilities | null
}

const embedded = {
  orderings: Object.values(Ordering),
  deliveries: Object.values(DeliveryGuarantee),
  delayedDelivery: true,
  overflow: Object.values(Overflow),
  limitBy: Object.values(LimitMeasure),
  rateLimitScopes: Object.values(RateLimitScope),
  dedupById: true,
  idempotentProducers: true,
  transactions: true,
  peek: true,
  consumptionRetention: true,
  retention: Object.values(RetentionKind),
} as const satisfies Omit<Capabilities, 'durability'>

const redis = {
  orderings: Object.values(Ordering),
  delayedDelivery: true,
  overflow: [],
  limitBy: [],
  rateLimitScopes: [],
  dedupById: true,
  idempotentProducers: true,
  peek: true,
  consumptionRetention: true,
  retention: [],
  // appendfsync always / everysec / no.
  durability: [Durability.Fsync, Durability.Interval, Durability.Memory],
} as const satisfies Omit<Capabilities, 'deliveries' | 'transactions'>

/**
 * What the known runtimes declare: data only, for messages that say where a
 * missing capability can be had (core never imports a driver). Each driver
 * declares its own `capabilities`; these entries follow them (a test checks
 * the engine's). The Redis entries are what the Redis driver is to declare.
 */
export const knownRuntimes: readonly KnownRuntime[] = [
  { url: 'file:', capabilities: { ...embedded, durability: Object.values(Durability) } },
  { url: 'memory:', capabilities: { ...embedded, durability: [Durability.Memory] } },
  { url: 'sluice://', capabilities: null },
  {
    url: 'redis://',
    capabilities: { ...redis, deliveries: Object.values(DeliveryGuarantee), transactions: true },
  },
  {
    url: 'redis+cluster://',
    capabilities: {
      ...redis,
      deliveries: [DeliveryGuarantee.AtMostOnce, DeliveryGuarantee.AtLeastOnce],
      transactions: false,
    },
  },
]

/** One thing a call asks of the runtime: a flag capability, or one value of a list capability. */
export type Need =
  FlagCapability | { readonly [K in ListCapability]: readonly [K, Capabilities[K][number]] }[ListCapability]

/** Whether `capabilities` has what `need` names. */
export function has(capabilities: Capabilities, need: Need): boolean {
  if (typeof need === 'string') return capabilities[need]
  const [name, value] = need
  return (capabilities[name] as readonly string[]).includes(value)
}

/** The known runtimes that have `need`, as a phrase; a broker client has it where its broker's runtime does. */
function runtimesWith(need: Need): { urls: string[]; text: string } {
  const urls = knownRuntimes.filter((r) => r.capabilities !== null && has(r.capabilities, need)).map((r) => r.url)
  const relays = knownRuntimes.filter((r) => r.capabilities === null).map((r) => r.url)
  if (urls.length === 0) return { urls, text: 'no known runtime has it' }
  const relayed = relays.length === 0 ? '' : `, or ${relays.join(', ')} in front of one of them`
  return { urls, text: `runtimes that have it: ${urls.join(', ')}${relayed}` }
}

/** One need of a call, with the words a message names it by. */
interface Asked {
  readonly need: Need
  /** What the caller asked for, as they wrote it: `ordering 'global'`, `limits.maxBytes`. */
  readonly what: string
}

/** The UNSUPPORTED error for a call that asks for something the runtime does not have. */
function unsupported(capabilities: Capabilities, asked: Asked): never {
  const { need, what } = asked
  const capability = typeof need === 'string' ? need : need[0]
  const value = typeof need === 'string' ? undefined : need[1]
  const offered = isListCapability(capability)
    ? `; it has ${capabilities[capability].length === 0 ? 'none' : capabilities[capability].join(', ')}`
    : ''
  const where = runtimesWith(need)
  throw sluiceError(
    ErrorCode.Unsupported,
    `this runtime does not support ${what} (capability ${capability}${offered}); ${where.text}`,
    { details: { capability, ...(value === undefined ? {} : { value }), runtimes: where.urls } },
  )
}

/** What a call asks of the runtime, by the call: every field is optional, and each is checked if given. */
export interface CapabilityRequest {
  /** `createTopic`: a checked topic config. */
  readonly topic?: TopicConfig
  /** `subscribe`: the consumer's ordering and delivery. */
  readonly consumer?: Pick<ConsumerConfig, 'ordering' | 'delivery'>
  /** `publish`, `publishBatch`, `ack({ publish })`: the message's publish options. */
  readonly publish?: Pick<PublishOptions, 'delayMs' | 'deliverAt'>
  /** `ack({ publish })`. */
  readonly transaction?: boolean
  /** `peek`, `deadLetters`. */
  readonly peek?: boolean
}

function topicAsks(config: TopicConfig): Asked[] {
  const asked: Asked[] = []
  if (config.durability !== undefined)
    asked.push({ need: ['durability', config.durability], what: `durability '${config.durability}'` })
  const { limits, rateLimit, retention } = config
  if (limits !== undefined) {
    for (const measure of Object.values(LimitMeasure))
      if (limits[measure] !== undefined) asked.push({ need: ['limitBy', measure], what: `limits.${measure}` })
    const overflow = limits.overflow ?? Overflow.Reject
    const implied = limits.overflow === undefined ? ' (the default once limits are set)' : ''
    asked.push({ need: ['overflow', overflow], what: `limits.overflow '${overflow}'${implied}` })
  }
  if (rateLimit !== undefined) {
    const per = rateLimit.per ?? RateLimitScope.Topic
    const implied = rateLimit.per === undefined ? ' (the default of a rateLimit)' : ''
    asked.push({ need: ['rateLimitScopes', per], what: `rateLimit.per '${per}'${implied}` })
  }
  if (retention !== undefined)
    for (const kind of Object.values(RetentionKind))
      if (retention[kind] !== undefined) asked.push({ need: ['retention', kind], what: `retention.${kind}` })
  // Asking for no deduplication (0) is what a runtime without it gives; the default window is no promise asked for.
  if (config.dedupWindowMs !== undefined && config.dedupWindowMs > 0)
    asked.push({
      need: 'dedupById',
      what: `dedupWindowMs ${config.dedupWindowMs} (deduplication by message id; 0 turns it off)`,
    })
  return asked
}

function asks(request: CapabilityRequest): Asked[] {
  const asked = request.topic === undefined ? [] : topicAsks(request.topic)
  const { consumer, publish } = request
  if (consumer !== undefined) {
    asked.push({ need: ['orderings', consumer.ordering], what: `ordering '${consumer.ordering}'` })
    asked.push({ need: ['deliveries', consumer.delivery], what: `delivery '${consumer.delivery}'` })
    if (consumer.delivery === DeliveryGuarantee.ExactlyOnce)
      asked.push({
        need: 'transactions',
        what: "delivery 'exactly-once' (it acknowledges and publishes in one transaction)",
      })
  }
  if (publish !== undefined && (publish.delayMs !== undefined || publish.deliverAt !== undefined))
    asked.push({ need: 'delayedDelivery', what: `delayed delivery (publish with delayMs or deliverAt)` })
  if (request.transaction === true)
    asked.push({ need: 'transactions', what: 'ack({ publish }) (acknowledge and publish in one transaction)' })
  if (request.peek === true)
    asked.push({ need: 'peek', what: 'listing messages without leasing them (peek, deadLetters)' })
  return asked
}

/**
 * Checks once, at the call that declares it, that the runtime has what a call
 * asks for: throws UNSUPPORTED (`details: { capability, value?, runtimes }`)
 * naming the first capability it lacks and the known runtimes that have it.
 * Arguments are checked for shape first (`validate.ts`); this only compares.
 *
 * A producer-chosen message `id` is accepted everywhere: it is stored as the
 * message's id, but only a runtime with `dedupById` promises that a repeat is
 * stored once. Asking for a dedup window (`dedupWindowMs` > 0) without it is
 * UNSUPPORTED.
 */
export function checkCapabilities(capabilities: Capabilities, request: CapabilityRequest): void {
  for (const asked of asks(request)) if (!has(capabilities, asked.need)) unsupported(capabilities, asked)
}

function listOf<K extends ListCapability>(name: K, given: unknown): Capabilities[K] {
  if (!Array.isArray(given)) return []
  const known: readonly unknown[] = capabilityValues[name]
  return (given as unknown[]).filter((value) => known.includes(value)) as Capabilities[K]
}

/**
 * Capabilities received from elsewhere (a broker's WELCOME): a field that is
 * missing or malformed (an older broker, a newer one) counts as absent (an
 * empty list, false) and values this version does not know are left out, so
 * a client asks only for what both sides understand.
 */
export function capabilitiesFromWire(value: unknown): Capabilities {
  const given = (typeof value === 'object' && value !== null ? value : {}) as Record<string, unknown>
  const flag = (name: FlagCapability): boolean => given[name] === true
  return {
    durability: listOf('durability', given['durability']),
    orderings: listOf('orderings', given['orderings']),
    deliveries: listOf('deliveries', given['deliveries']),
    delayedDelivery: flag('delayedDelivery'),
    overflow: listOf('overflow', given['overflow']),
    limitBy: listOf('limitBy', given['limitBy']),
    rateLimitScopes: listOf('rateLimitScopes', given['rateLimitScopes']),
    dedupById: flag('dedupById'),
    idempotentProducers: flag('idempotentProducers'),
    transactions: flag('transactions'),
    peek: flag('peek'),
    consumptionRetention: flag('consumptionRetention'),
    retention: listOf('retention', given['retention']),
  }
}
