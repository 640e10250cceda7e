import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { ErrorCode, SluiceError, sluiceError } from '../../core/errors.ts'

/**
 * The Redis driver's connection: one command client (a single server or a
 * cluster), one subscriber for wake-ups, and the scripts run by hash. ioredis
 * is an optional peer dependency, imported here only, when `open()` is asked
 * for a `redis://` URL.
 */

export interface RedisEndpoint {
  readonly cluster: boolean
  readonly nodes: readonly { readonly host: string; readonly port: number }[]
  readonly tls: boolean
  readonly username: string | undefined
  readonly password: string | undefined
  readonly db: number
  /** Every key the driver makes starts with this (default `sluice`): several Sluice installations can share a server. */
  readonly prefix: string
}

const schemes = ['redis:', 'rediss:', 'redis+cluster:', 'rediss+cluster:']

/**
 * `redis://[user:password@]host[:6379][/db][?prefix=name]`, `rediss://` for
 * TLS, and `redis+cluster://host1:7000,host2:7001[?prefix=name]` (or
 * `rediss+cluster://`) for a Redis Cluster given some of its nodes.
 */
export function parseRedisUrl(url: string): RedisEndpoint {
  const scheme = /^[a-z+]+:/i.exec(url)?.[0]?.toLowerCase()
  if (scheme === undefined || !schemes.includes(scheme))
    throw sluiceError(ErrorCode.InvalidArgument, `url ${JSON.stringify(url)} is not a redis:// or redis+cluster:// URL`)
  const cluster = scheme.includes('+cluster')
  const tls = scheme.startsWith('rediss')
  const rest = url.slice(scheme.length).replace(/^\/\//, '')
  const at = rest.lastIndexOf('@', rest.search(/[/?]|$/))
  const auth = at >= 0 ? rest.slice(0, at) : ''
  const afterAuth = at >= 0 ? rest.slice(at + 1) : rest
  const hostsEnd = afterAuth.search(/[/?]|$/)
  const hostList = afterAuth.slice(0, hostsEnd)
  const tail = afterAuth.slice(hostsEnd)
  const [path = '', query = ''] = tail.split('?', 2)
  const params = new URLSearchParams(query)
  const nodes = hostList.split(',').map((hostPort) => {
    const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(hostPort)
    if (m === null)
      throw sluiceError(
        ErrorCode.InvalidArgument,
        `url ${JSON.stringify(url)} has no valid host:port (got ${JSON.stringify(hostPort)}); use redis://host:6379`,
      )
    return { host: m[1]!.replace(/^\[(.*)\]$/, '$1'), port: m[2] === undefined ? 6379 : Number(m[2]) }
  })
  if (!cluster && nodes.length > 1)
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `url ${JSON.stringify(url)} names several hosts; for a Redis Cluster use redis+cluster://host1:7000,host2:7001`,
    )
  const dbText = path.replace(/^\//, '')
  const db = dbText === '' ? 0 : Number(dbText)
  if (!Number.isInteger(db) || db < 0)
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `url ${JSON.stringify(url)}: the database must be a number, got ${dbText}`,
    )
  if (cluster && db !== 0)
    throw sluiceError(ErrorCode.InvalidArgument, `url ${JSON.stringify(url)}: a Redis Cluster has only database 0`)
  const prefix = params.get('prefix') ?? 'sluice'
  if (!/^[A-Za-z0-9._-]+$/.test(prefix))
    throw sluiceError(
      ErrorCode.InvalidArgument,
      `url ${JSON.stringify(url)}: prefix must be letters, digits, '.', '_' or '-', got ${JSON.stringify(prefix)}`,
    )
  const colon = auth.indexOf(':')
  const username = colon >= 0 ? decodeURIComponent(auth.slice(0, colon)) : undefined
  const password =
    colon >= 0 ? decodeURIComponent(auth.slice(colon + 1)) : auth === '' ? undefined : decodeURIComponent(auth)
  return { cluster, nodes, tls, username: username === '' ? undefined : username, password, db, prefix }
}

/** A Lua script, run by its SHA1 (loaded on first use on each node). */
export class Script {
  readonly sha: string
  constructor(
    readonly name: string,
    readonly lua: string,
  ) {
    this.sha = createHash('sha1').update(lua).digest('hex')
  }
}

export type RedisReply = Buffer | number | null | RedisReply[]

type Client = Redis | Cluster

export class RedisLink {
  private readonly wakeListeners = new Map<string, Set<() => void>>()
  private readonly pending = new Set<Promise<unknown>>()
  private closed = false

  private constructor(
    readonly endpoint: RedisEndpoint,
    readonly client: Client,
    private readonly subscriber: Client,
  ) {
    subscriber.on('message', (channel: string) => {
      for (const listener of this.wakeListeners.get(channel) ?? []) listener()
    })
  }

  static async connect(endpoint: RedisEndpoint, connectTimeoutMs: number): Promise<RedisLink> {
    let ioredis: { Redis: typeof import('ioredis').Redis; Cluster: typeof import('ioredis').Cluster }
    try {
      ioredis = await import('ioredis')
    } catch {
      throw sluiceError(
        ErrorCode.Unsupported,
        "the Redis driver needs the 'ioredis' package: npm install ioredis (it is an optional peer dependency of sluice)",
      )
    }
    const common = {
      username: endpoint.username,
      password: endpoint.password,
      tls: endpoint.tls ? {} : undefined,
      connectTimeout: connectTimeoutMs,
      lazyConnect: true,
      maxRetriesPerRequest: 3,
    }
    const make = (): Client =>
      endpoint.cluster
        ? new ioredis.Cluster(
            endpoint.nodes.map((n) => ({ host: n.host, port: n.port })),
            { redisOptions: common, lazyConnect: true },
          )
        : new ioredis.Redis({
            ...common,
            host: endpoint.nodes[0]!.host,
            port: endpoint.nodes[0]!.port,
            db: endpoint.db,
          })
    const client = make()
    const subscriber = make()
    // ioredis reports connection trouble as events too; commands fail with it, so the events need no listener's noise.
    client.on('error', () => undefined)
    subscriber.on('error', () => undefined)
    const where = endpoint.nodes.map((n) => `${n.host}:${n.port}`).join(',')
    try {
      await withTimeout(Promise.all([client.connect(), subscriber.connect()]), connectTimeoutMs)
      await client.ping()
    } catch (err) {
      client.disconnect()
      subscriber.disconnect()
      throw sluiceError(
        ErrorCode.Unavailable,
        `cannot reach Redis at ${where}: ${err instanceof Error ? err.message : String(err)}. Is redis-server running there?`,
        { details: { url: where } },
      )
    }
    return new RedisLink(endpoint, client, subscriber)
  }

  /** Resolves once no command sent so far is waiting for its answer (tests step a fake clock between). */
  async idle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending])
  }

  private track<T>(promise: Promise<T>): Promise<T> {
    this.pending.add(promise)
    void promise.then(
      () => this.pending.delete(promise),
      () => this.pending.delete(promise),
    )
    return promise
  }

  /** Runs a script; NOSCRIPT (a node that has not seen it yet, or restarted) loads it by sending it whole. */
  run(script: Script, keys: readonly string[], args: readonly (string | Buffer | number)[]): Promise<RedisReply> {
    return this.track(this.runScript(script, keys, args))
  }

  private readonly defined = new Set<string>()

  private async runScript(
    script: Script,
    keys: readonly string[],
    args: readonly (string | Buffer | number)[],
  ): Promise<RedisReply> {
    // ioredis runs a defined command by EVALSHA and sends the script whole on NOSCRIPT, on every node of a cluster.
    const name = `sluice_${script.sha}`
    if (!this.defined.has(name)) {
      this.client.defineCommand(name, { lua: script.lua })
      this.defined.add(name)
    }
    const run = (this.client as unknown as Record<string, (...a: unknown[]) => Promise<RedisReply>>)[`${name}Buffer`]!
    try {
      return await run.call(this.client, keys.length, ...keys, ...args)
    } catch (err) {
      throw redisError(err, script.name)
    }
  }

  /** Runs a plain command, failures as SluiceErrors. */
  call<T>(what: string, fn: (client: Client) => Promise<T>): Promise<T> {
    return this.track(
      fn(this.client).catch((err: unknown) => {
        throw redisError(err, what)
      }),
    )
  }

  /** Calls `listener` whenever someone says `topic` has something new; returns the unsubscribe. */
  onWake(channel: string, listener: () => void): () => void {
    let set = this.wakeListeners.get(channel)
    if (set === undefined) {
      set = new Set()
      this.wakeListeners.set(channel, set)
      void this.subscriber.subscribe(channel).catch(() => undefined)
    }
    set.add(listener)
    return () => {
      set.delete(listener)
      if (set.size === 0 && this.wakeListeners.get(channel) === set) {
        this.wakeListeners.delete(channel)
        if (!this.closed) void this.subscriber.unsubscribe(channel).catch(() => undefined)
      }
    }
  }

  async close(): Promise<void> {
    if (this.closed) return
    this.closed = true
    await Promise.allSettled([this.client.quit(), this.subscriber.quit()])
    this.client.disconnect()
    this.subscriber.disconnect()
  }
}

function redisError(err: unknown, what: string): SluiceError {
  if (err instanceof SluiceError) return err
  const message = err instanceof Error ? err.message : String(err)
  return sluiceError(ErrorCode.Unavailable, `Redis failed at ${what}: ${message}`, { details: { redis: message } })
}

async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
      }),
    ])
  } finally {
    clearTimeout(timer)
  }
}
