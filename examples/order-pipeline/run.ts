/**
 * The order pipeline in one command:
 *
 *   node --import tsx examples/order-pipeline/run.ts
 *
 * Starts a broker (`sluice serve`) and three services, each its own process:
 * checkout publishes `order.completed`; inventory and email consume it. Then
 * it stops the email service, places more orders, starts email again, and
 * checks that email sent every confirmation it missed, none twice. Exits 0
 * when it did, 1 with the reason when not.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { open, type SubscriptionStats } from '../../src/index.ts'
import { Processes, type Service } from './processes.ts'
import { ordersTopic } from './shared.ts'

/** The longest any one step may take. */
const stepTimeoutMs = 30_000
const batchSize = 5

const repoRoot = fileURLToPath(new URL('../../', import.meta.url))
const sluiceCli = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url))
const script = (name: string): string => fileURLToPath(new URL(`${name}.ts`, import.meta.url))

function say(text: string): void {
  process.stdout.write(`[run] ${text}\n`)
}

/** Ports that were free a moment ago: listened on with port 0, then closed. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer()
          server.once('error', reject)
          server.listen(0, '127.0.0.1', () => resolve(server))
        }),
    ),
  )
  const ports = servers.map((server) => (server.address() as AddressInfo).port)
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))))
  return ports
}

/** `o-<from>` to `o-<to>`. */
function orderIds(from: number, to: number): string[] {
  return Array.from({ length: to - from + 1 }, (_, i) => `o-${from + i}`)
}

function range(ids: readonly string[]): string {
  return ids.length === 0 ? 'none' : ids.length === 1 ? ids[0]! : `${ids[0]!}..${ids[ids.length - 1]!}`
}

/** What the services report, read from their output. */
class Ledger {
  readonly published: string[] = []
  /** Order id -> how many times inventory reserved its stock. */
  readonly reserved = new Map<string, number>()
  /** Order id -> the generation (1, then 2 after the restart) of the email service for each confirmation sent. */
  readonly emailed = new Map<string, number[]>()
  readonly subscribed = new Set<Service>()
  brokerListening = false

  read(service: Service, line: string): void {
    if (service.name === 'broker' && line.includes('sluice broker listening')) this.brokerListening = true
    if (/^\[(inventory|email)\] subscribed to /.test(line)) this.subscribed.add(service)
    const orderId = /^\[(?:checkout\] charged|inventory\] reserved|email\] sent) .*? order (o-\d+) /.exec(line)?.[1]
    if (orderId === undefined) return
    if (service.name === 'checkout') this.published.push(orderId)
    if (service.name === 'inventory') this.reserved.set(orderId, (this.reserved.get(orderId) ?? 0) + 1)
    if (service.name === 'email') this.emailed.set(orderId, [...(this.emailed.get(orderId) ?? []), service.generation])
  }

  handledAll(ids: readonly string[]): { reserved: boolean; emailed: boolean } {
    return {
      reserved: ids.every((id) => this.reserved.has(id)),
      emailed: ids.every((id) => this.emailed.has(id)),
    }
  }

  progress(): string {
    return `checkout published ${this.published.length}, inventory reserved ${this.reserved.size}, email sent ${this.emailed.size}`
  }
}

async function scenario(processes: Processes, dataDir: string, signal: AbortSignal): Promise<void> {
  const ledger = new Ledger()
  processes.onLine((service, line) => ledger.read(service, line))
  const until = (what: string, done: () => boolean, stop = signal): Promise<void> =>
    processes.until(what, done, { timeoutMs: stepTimeoutMs, progress: () => ledger.progress(), signal: stop })
  /** Calls `check` every 50 ms until it answers true (a throw counts as false), failing as `until` does. */
  const poll = async (what: string, check: () => Promise<boolean>): Promise<void> => {
    const done = new AbortController()
    const stop = AbortSignal.any([signal, done.signal])
    const checking = async (): Promise<void> => {
      while (!(await check().catch(() => false))) await sleep(50, undefined, { signal: stop })
    }
    try {
      // `until` never sees its condition hold here: it stands for the timeout and for a child that dies.
      await Promise.race([checking(), until(what, () => false, stop)])
    } finally {
      done.abort()
    }
  }

  // --- the broker ---
  const [port, httpPort] = (await freePorts(2)) as [number, number]
  const url = `sluice://127.0.0.1:${port}`
  say(`starting the broker: sluice serve --data-dir ${dataDir} --port ${port} --http-port ${httpPort}`)
  processes.start(
    'broker',
    sluiceCli,
    ['serve', '--data-dir', dataDir, '--port', String(port), '--http-port', String(httpPort)],
    { cwd: repoRoot },
  )
  // The broker prints this line once both its ports listen.
  await until('the broker to listen', () => ledger.brokerListening)

  // run.ts looks at the queue through the same public API, to show what waits in it.
  const observer = await open({ url })
  try {
    const subscriptionStats = async (name: string): Promise<SubscriptionStats | undefined> =>
      (await observer.stats(ordersTopic)).subscriptions.find((s) => s.subscription === name)

    // --- the consumers ---
    const start = (name: string): Service => processes.start(name, script(name), [url], { cwd: repoRoot })
    say('starting the inventory and email services (whichever connects first creates the topic)')
    const inventory = start('inventory')
    let email = start('email')
    await until(
      'inventory and email to subscribe',
      () => ledger.subscribed.has(inventory) && ledger.subscribed.has(email),
    )

    // --- 5 orders, everyone up ---
    const checkout = start('checkout')
    const first = orderIds(1, batchSize)
    say(`checkout places ${batchSize} orders`)
    checkout.writeLine(String(batchSize))
    await until(`checkout to publish ${range(first)}`, () => ledger.published.length >= batchSize)
    await until(`inventory and email to handle ${range(first)}`, () => {
      const handled = ledger.handledAll(first)
      return handled.reserved && handled.emailed
    })
    say(`inventory reserved the stock and email sent the confirmation of all ${batchSize} orders`)

    // --- email goes down; checkout goes on ---
    say('stopping the email service (SIGTERM)')
    const exit = await email.stop('SIGTERM')
    if (exit.code !== 0)
      throw new Error(`the email service should drain and exit 0 on SIGTERM, but ended with ${JSON.stringify(exit)}`)
    say('the email service exited with code 0: it is down')

    const second = orderIds(batchSize + 1, 2 * batchSize)
    say(`checkout places ${batchSize} more orders while the email service is down`)
    checkout.writeLine(String(batchSize))
    await until(`checkout to publish ${range(second)}`, () => ledger.published.length >= 2 * batchSize)
    await until(`inventory to handle ${range(second)}`, () => ledger.handledAll(second).reserved)
    await poll(`the queue to hold ${batchSize} messages for subscription 'email'`, async () => {
      return (await subscriptionStats('email'))?.depth === batchSize
    })
    const waiting = await subscriptionStats('email')
    say(
      `inventory reserved the stock of ${range(second)}; their ${batchSize} confirmations wait in the queue (subscription 'email': depth ${waiting?.depth}, ${waiting?.consumers} consumers)`,
    )

    // --- email comes back ---
    say('starting the email service again')
    email = start('email')
    await until(`the restarted email service to send the confirmations of ${range(second)}`, () =>
      second.every((id) => ledger.emailed.has(id)),
    )
    // Nothing left unacknowledged means nothing more can be delivered: the counts below are final.
    await poll('both subscriptions to acknowledge every message', async () => {
      const stats = [await subscriptionStats('inventory'), await subscriptionStats('email')]
      return stats.every((s) => s?.depth === 0 && s.inFlight === 0)
    })

    // --- what happened, checked ---
    const all = [...first, ...second]
    const problems: string[] = []
    if (ledger.published.join() !== all.join())
      problems.push(`checkout published ${ledger.published.join(', ')}, not ${range(all)}`)
    for (const id of all) {
      const reserved = ledger.reserved.get(id) ?? 0
      const emails = ledger.emailed.get(id) ?? []
      if (reserved !== 1) problems.push(`inventory reserved the stock of ${id} ${reserved} times`)
      if (emails.length !== 1) problems.push(`email sent the confirmation of ${id} ${emails.length} times`)
      const expected = first.includes(id) ? 1 : 2
      if (emails.length === 1 && emails[0] !== expected)
        problems.push(`the confirmation of ${id} came from email service start ${emails[0]}, not start ${expected}`)
    }
    if (problems.length > 0) throw new Error(problems.join('; '))
    const [inventoryStats, emailStats] = [await subscriptionStats('inventory'), await subscriptionStats('email')]
    say('summary:')
    say(`  checkout charged and published ${all.length} orders (${range(all)}) and never waited for a consumer`)
    say(`  inventory reserved the stock of all ${all.length} orders, each once`)
    say(
      `  email service was down for orders ${range(second)}; on restart it sent all ${second.length} missed emails, and none twice (${all.length} emails for ${all.length} orders)`,
    )
    say(
      `  broker: subscriptions inventory and email at depth ${inventoryStats?.depth} and ${emailStats?.depth}, redeliveries ${inventoryStats?.redeliveries} and ${emailStats?.redeliveries}`,
    )
  } finally {
    await observer.close()
  }
}

const startedAt = Date.now()
const processes = new Processes((line) => process.stdout.write(`${line}\n`))
// The last resort: whatever happens to run.ts, its children do not run on.
process.on('exit', () => processes.killAll())
const interrupted = new AbortController()
const onSignal = (signal: NodeJS.Signals): void => {
  if (interrupted.signal.aborted) process.exit(1)
  interrupted.abort(new Error(`interrupted by ${signal}`))
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

let dataDir: string | undefined
try {
  say('Sluice order pipeline: checkout -> order.completed -> inventory and email, each service its own process')
  dataDir = await mkdtemp(join(tmpdir(), 'sluice-order-pipeline-'))
  await scenario(processes, dataDir, interrupted.signal)
} catch (err) {
  process.exitCode = 1
  process.stderr.write(`[run] FAILED: ${err instanceof Error ? err.message : String(err)}\n`)
} finally {
  say('stopping everything')
  await processes.stopAll()
  if (dataDir !== undefined) await rm(dataDir, { recursive: true, force: true })
  process.off('SIGINT', onSignal)
  process.off('SIGTERM', onSignal)
}
say(`${process.exitCode === 1 ? 'failed' : 'done'} in ${((Date.now() - startedAt) / 1000).toFixed(1)} s`)
