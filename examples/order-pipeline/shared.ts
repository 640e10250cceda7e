/**
 * What the order pipeline's services share: the topic, the message they
 * exchange, and how each one connects. The services never talk to each other;
 * only to the broker.
 */
import { closeOnSignals, open, SluiceError, type Sluice } from '../../src/index.ts' // in your code: from 'sluice'

/** Published by checkout once an order is paid; inventory and email each have a subscription on it. */
export const ordersTopic = 'order.completed'

/** The `order.completed` message. */
export interface Order {
  readonly orderId: string
  /** The message key: one user's orders are handled in the order they were placed. */
  readonly userId: string
  readonly email: string
  readonly items: readonly { readonly sku: string; readonly quantity: number; readonly priceCents: number }[]
  readonly totalCents: number
  /** The payment provider's id for the charge, made before the order was published. */
  readonly chargeId: string
}

/** The broker address: the first argument, else SLUICE_URL, else a local `sluice serve`. */
export function brokerUrl(): string {
  return process.argv[2] ?? process.env.SLUICE_URL ?? 'sluice://127.0.0.1:7420'
}

/** Prints one line as `[service] text`, so that the lines of several services read well side by side. */
export function say(service: string, text: string): void {
  process.stdout.write(`[${service}] ${text}\n`)
}

export function dollars(cents: number): string {
  return `$${(cents / 100).toFixed(2)}`
}

export function describeError(err: unknown): string {
  if (err instanceof SluiceError) return `${err.code}: ${err.message}`
  return err instanceof Error ? err.message : String(err)
}

/**
 * Connects to the broker, closes and exits on SIGTERM/SIGINT (saying
 * `onSignal`), and makes sure the topic exists. Every service calls this at
 * start, so whichever starts first creates the topic (createTopic is idempotent).
 */
export async function connect(
  service: string,
  onSignal = 'draining (running handlers finish, their acks land)',
): Promise<Sluice> {
  const url = brokerUrl()
  const sluice = await open({ url, onError: (err) => say(service, `warning: ${describeError(err)}`) })
  closeOnSignals(sluice, {
    timeoutMs: 10_000,
    onSignal: (signal) => say(service, `${signal}: ${onSignal}, then exiting`),
  })
  // Written synchronously to terminals, files and (on Linux) pipes, so it appears even on process.exit().
  process.on('exit', (code) => say(service, `stopped (exit code ${code})`))
  const topic = await sluice.createTopic(ordersTopic, { partitions: 3 })
  say(service, `connected to ${url}; topic ${topic.name} has ${topic.partitions} partitions`)
  return sluice
}
