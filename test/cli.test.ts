import assert from 'node:assert/strict'
import { spawn, type ChildProcess } from 'node:child_process'
import { createServer, type AddressInfo } from 'node:net'
import { after, before, describe, it, type TestContext } from 'node:test'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'
import { open } from '../src/open.ts'
import type { Sluice } from '../src/core/sluice.ts'
import type { Receipt, TopicInfo, TopicStats } from '../src/core/types.ts'
import { capabilityNames, knownRuntimes, type Capabilities } from '../src/core/capabilities.ts'
import { cleanup } from './helpers/cleanup.ts'
import { fixture, runChild, type Child } from './helpers/child.ts'
import { tempDir } from './helpers/temp-dir.ts'

/** The `sluice` command line run as a real child process against a broker in another. */

const main = fileURLToPath(new URL('../src/cli/main.ts', import.meta.url))

interface Run {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly stdout: string
  readonly stderr: string
}

interface CliProcess {
  readonly child: ChildProcess
  readonly result: Promise<Run>
}

let url = ''
let broker: Child
/** A client in this process, to set up and check what the CLI cannot show on its own. */
let client: Sluice

/** Starts `sluice ...args`; SIGKILLed after `timeoutMs` and when the test ends, if still running. */
function start(t: TestContext, args: string[], options: { input?: string; timeoutMs?: number } = {}): CliProcess {
  const child = spawn(process.execPath, ['--import', 'tsx', main, ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, SLUICE_URL: url },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  child.stdin.end(options.input ?? '')
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000)
  const result = new Promise<Run>((resolve) => {
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      resolve({ code, signal, stdout, stderr })
    })
  })
  cleanup(t, async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
    await result
  })
  return { child, result }
}

/** Runs `sluice ...args` to the end. */
function sluice(t: TestContext, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<Run> {
  return start(t, args, options).result
}

/** Runs `sluice ...args`, expects exit 0 and nothing on stderr; resolves with stdout. */
async function ok(t: TestContext, args: string[], input?: string): Promise<string> {
  const run = await sluice(t, args, { input })
  assert.equal(
    run.code,
    0,
    `sluice ${args.join(' ')} exited ${run.code ?? run.signal}: ${run.stderr}; it printed: ${run.stdout}`,
  )
  assert.equal(run.stderr, '')
  return run.stdout
}

function jsonLines(stdout: string): unknown[] {
  return stdout
    .split('\n')
    .filter((line) => line.length > 0)
    .map((line) => JSON.parse(line) as unknown)
}

async function until(what: string, condition: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(50)
  }
}

async function consumers(topic: string, subscription: string): Promise<number> {
  const stats = await client.stats(topic)
  return stats.subscriptions.find((s) => s.subscription === subscription)?.consumers ?? 0
}

describe('sluice CLI', { concurrency: 4 }, () => {
  before(async () => {
    broker = runChild(null, fixture('broker.ts'), ['memory', '0'])
    const port = Number((await broker.waitForLine(/^listening /)).split(' ')[1])
    url = `sluice://127.0.0.1:${port}`
    client = await open({ url })
  })

  after(async () => {
    await client.close()
    broker.process.kill('SIGTERM')
    const stopped = await Promise.race([broker.exited, sleep(10_000).then(() => 'still running')])
    if (stopped === 'still running') await broker.kill9()
  })

  it('--help lists every verb', async (t) => {
    const help = await ok(t, ['--help'])
    for (const verb of ['topics', 'publish', 'consume', 'stats', 'dlq', 'check', 'serve', 'demo'])
      assert.match(help, new RegExp(`^  ${verb} `, 'm'), `${verb} in --help`)
  })

  it('topics create, list, describe and delete, with human and JSON output', async (t) => {
    const [created, scratch] = await Promise.all([
      ok(t, ['topics', 'create', 'cli-orders', '--partitions', '3', '--retention-max-age-ms', '60000']),
      ok(t, ['topics', 'create', 'cli-scratch', '--max-message-bytes', '4096', '--json']),
    ])
    assert.match(created, /^created topic cli-orders\ntopic\s+cli-orders\npartitions\s+3$/m)
    const info = JSON.parse(scratch) as TopicInfo
    assert.equal(info.name, 'cli-scratch')
    assert.equal(info.partitions, 1)
    assert.equal(info.durability, 'memory')
    assert.equal(info.maxMessageBytes, 4096)
    assert.deepEqual(info.retention, { maxAgeMs: null, maxBytes: null })

    const [again, list, listJson, described, describedJson] = await Promise.all([
      ok(t, ['topics', 'create', 'cli-orders', '--partitions', '3']),
      ok(t, ['topics', 'list']),
      ok(t, ['topics', 'list', '--json']),
      ok(t, ['topics', 'describe', 'cli-orders']),
      ok(t, ['topics', 'describe', 'cli-scratch', '--json']),
    ])
    assert.match(again, /^topic cli-orders already exists with these settings$/m)
    assert.match(list, /^TOPIC\s+PARTITIONS\s+DURABILITY\s+RETENTION\s+MAX MESSAGE\s+CREATED$/m)
    assert.match(list, /^cli-orders\s+3\s+memory\s+max age 1 min/m)
    assert.match(list, /^cli-scratch\s+1\s+memory\s+until acknowledged\s+4 KiB/m)
    const listed = JSON.parse(listJson) as TopicInfo[]
    assert.deepEqual(
      listed.find((topic) => topic.name === 'cli-scratch'),
      info,
    )
    assert.equal(listed.find((topic) => topic.name === 'cli-orders')?.retention.maxAgeMs, 60_000)
    assert.match(described, /^topic\s+cli-orders\npartitions\s+3\ndurability\s+memory\nretention\s+max age 1 min/m)
    assert.deepEqual(JSON.parse(describedJson), info)

    const [deleted, deletedJson] = await Promise.all([
      ok(t, ['topics', 'delete', 'cli-orders']),
      ok(t, ['topics', 'delete', 'cli-scratch', '--json']),
    ])
    assert.equal(deleted, 'deleted topic cli-orders\n')
    assert.deepEqual(JSON.parse(deletedJson), { topic: 'cli-scratch', deleted: true })
    const names = (await client.listTopics()).map((topic) => topic.name)
    assert.ok(!names.includes('cli-orders') && !names.includes('cli-scratch'), `left: ${names.join(', ')}`)
  })

  it('publish sends the argument and each stdin line; consume --count prints them in order and acknowledges them', async (t) => {
    await client.createTopic('cli-events')
    const first = JSON.parse(
      await ok(t, [
        'publish',
        'cli-events',
        '{"n":0}',
        '--key',
        'user-1',
        '--header',
        'source=cli',
        '--header',
        'query=a=b',
        '--json',
      ]),
    ) as Receipt
    assert.deepEqual({ ...first, id: '' }, { id: '', partition: 0, offset: 0, duplicate: false })
    const fromStdin = jsonLines(
      await ok(t, ['publish', 'cli-events', '--json'], 'hello world\n{"n":2}\n\n42\r\n[1,2]'),
    ) as Receipt[]
    assert.deepEqual(
      fromStdin.map((r) => r.offset),
      [1, 2, 3, 4],
      'one message per non-empty line, the last one without a newline too',
    )
    assert.match(await ok(t, ['publish', 'cli-events', 'plain text']), /^partition 0 {2}offset 5 {2}id [0-9a-f-]{36}$/m)

    const messages = jsonLines(
      await ok(t, ['consume', 'cli-events', '--subscription', 'audit', '--count', '6', '--json']),
    ) as Record<string, unknown>[]
    assert.deepEqual(
      messages.map((m) => m['data']),
      [{ n: 0 }, 'hello world', { n: 2 }, 42, [1, 2], 'plain text'],
    )
    assert.deepEqual(
      messages.map((m) => m['offset']),
      [0, 1, 2, 3, 4, 5],
    )
    assert.deepEqual(messages.map((m) => m['id']).slice(0, 5), [first.id, ...fromStdin.map((r) => r.id)])
    const head = messages[0]!
    assert.equal(head['topic'], 'cli-events')
    assert.equal(head['key'], 'user-1')
    assert.equal(head['partition'], 0)
    assert.equal(head['dataEncoding'], 'json')
    assert.equal(head['attempt'], 1)
    assert.equal(typeof head['timestamp'], 'number')
    assert.deepEqual(head['headers'], { source: 'cli', query: 'a=b' })
    assert.equal(messages[1]!['key'], null)

    const stats = JSON.parse(await ok(t, ['stats', 'cli-events', '--json'])) as TopicStats
    assert.equal(stats.topic, 'cli-events')
    assert.equal(typeof stats.messages, 'number')
    assert.equal(typeof stats.bytes, 'number')
    assert.equal(stats.partitions.length, 1)
    assert.equal(stats.partitions[0]!.endOffset, 6)
    const audit = stats.subscriptions.find((s) => s.subscription === 'audit')
    assert.ok(audit !== undefined)
    assert.equal(audit.depth, 0, 'every printed message was acknowledged')
    assert.equal(audit.inFlight, 0)
    assert.equal(audit.acked, 6)
    assert.equal(audit.redeliveries, 0)
    assert.equal(audit.consumers, 0)

    // Nothing is left for that subscription: a second consume waits, printing nothing, until SIGINT.
    const second = start(t, ['consume', 'cli-events', '--subscription', 'audit', '--json'])
    await until('the second consumer to subscribe', async () => (await consumers('cli-events', 'audit')) === 1)
    await sleep(300)
    second.child.kill('SIGINT')
    const run = await second.result
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, '')
    assert.equal(await consumers('cli-events', 'audit'), 0, 'the consumer left on SIGINT')
  })

  it('consume prints human lines, shows bytes as base64 and starts a new subscription at --from latest', async (t) => {
    await client.createTopic('cli-bytes')
    await client.publish('cli-bytes', Buffer.from([0, 1, 2, 255]), { key: 'k', headers: { h: 'v' } })
    await client.publish('cli-bytes', { a: 1 })

    const latest = start(t, ['consume', 'cli-bytes', '--subscription', 'tail', '--from', 'latest', '--count', '1'])
    const [human, json] = await Promise.all([
      ok(t, ['consume', 'cli-bytes', '--subscription', 'human', '--count', '2']),
      ok(t, ['consume', 'cli-bytes', '--subscription', 'machine', '--count', '1', '--json']),
    ])
    assert.equal(human, `0:0  key=k  [h=v]  base64:AAEC/w==\n0:1  {"a":1}\n`)
    const [bytes] = jsonLines(json) as Record<string, unknown>[]
    assert.equal(bytes!['dataEncoding'], 'base64')
    assert.deepEqual(Buffer.from(bytes!['data'] as string, 'base64'), Buffer.from([0, 1, 2, 255]))

    await until('the --from latest consumer to subscribe', async () => (await consumers('cli-bytes', 'tail')) === 1)
    await client.publish('cli-bytes', 'after')
    const run = await latest.result
    assert.equal(run.code, 0, run.stderr)
    assert.equal(run.stdout, '0:2  after\n')
  })

  it('consume --peek prints what the subscription has not acknowledged, and leases, acknowledges and counts nothing', async (t) => {
    await client.createTopic('cli-peek')
    await client.publishBatch('cli-peek', [{ data: 'a' }, { data: 'b' }, { data: 'c' }])
    // The subscription exists and has acknowledged the first message.
    await ok(t, ['consume', 'cli-peek', '--subscription', 'audit', '--count', '1'])

    const [peeked, human, fresh] = await Promise.all([
      ok(t, ['consume', 'cli-peek', '--subscription', 'audit', '--peek', '--json']),
      ok(t, ['consume', 'cli-peek', '--subscription', 'audit', '--peek', '--count', '1']),
      ok(t, ['consume', 'cli-peek', '--subscription', 'new', '--peek', '--json']),
    ])
    const messages = jsonLines(peeked) as Record<string, unknown>[]
    assert.deepEqual(
      messages.map((m) => [m['offset'], m['data']]),
      [
        [1, 'b'],
        [2, 'c'],
      ],
    )
    assert.equal(messages[0]!['attempt'], undefined, 'not a delivery')
    assert.equal(human, '0:1  b\n')
    assert.equal(jsonLines(fresh).length, 3, 'a subscription not created yet sees every message')

    const stats = await client.stats('cli-peek')
    assert.deepEqual(
      stats.subscriptions.map((s) => s.subscription),
      ['audit'],
      'peeking did not create a subscription',
    )
    const audit = stats.subscriptions[0]!
    assert.equal(audit.depth, 2)
    assert.equal(audit.inFlight, 0)
    assert.equal(audit.acked, 1)
    // What was peeked comes as first deliveries.
    const consumed = jsonLines(
      await ok(t, ['consume', 'cli-peek', '--subscription', 'audit', '--count', '2', '--json']),
    ) as Record<string, unknown>[]
    assert.deepEqual(
      consumed.map((m) => [m['data'], m['attempt']]),
      [
        ['b', 1],
        ['c', 1],
      ],
    )
  })

  it('dlq list shows dead letters with why they died without taking them; consume --peek on the .dlq loses none; dlq redrive moves them back', async (t) => {
    await client.createTopic('cli-pay')
    const receipt = await client.publish('cli-pay', { order: 7 }, { key: 'user-1' })
    const failing = await client.subscribe(
      'cli-pay',
      'billing',
      () => {
        throw new Error('card declined')
      },
      { maxAttempts: 1 },
    )
    await until('the dead letter', async () => (await client.deadLetters('cli-pay')).length === 1)
    await failing.close()

    const list = async (...args: string[]): Promise<Record<string, unknown>[]> =>
      jsonLines(await ok(t, ['dlq', 'list', 'cli-pay', ...args, '--json'])) as Record<string, unknown>[]
    const [letter] = await list()
    assert.equal(letter!['topic'], 'cli-pay.dlq')
    assert.deepEqual(letter!['data'], { order: 7 })
    assert.equal(letter!['key'], 'user-1')
    assert.equal(letter!['originalTopic'], 'cli-pay')
    assert.equal(letter!['originalOffset'], receipt.offset)
    assert.equal(letter!['subscription'], 'billing')
    assert.equal(letter!['attempts'], 1)
    assert.match(letter!['error'] as string, /card declined/)
    assert.deepEqual(await list('--subscription', 'billing'), [letter])
    assert.deepEqual(await list('--subscription', 'shipping'), [])
    assert.match(
      await ok(t, ['dlq', 'list', 'cli-pay']),
      /^0:0 {2}from cli-pay 0:0 {2}subscription=billing {2}attempts=1 {2}at \S+ {2}error="[^"]*card declined[^"]*" {2}\{"order":7\}\n$/,
    )

    // Looking into the dead-letter topic, as often as wanted, takes nothing away.
    for (let i = 0; i < 2; i++) {
      const peeked = jsonLines(
        await ok(t, ['consume', 'cli-pay.dlq', '--subscription', 'look', '--peek', '--json']),
      ) as Record<string, unknown>[]
      assert.deepEqual(
        peeked.map((m) => m['id']),
        [letter!['id']],
      )
    }
    assert.deepEqual(await list(), [letter], 'still there for a redrive')

    assert.deepEqual(JSON.parse(await ok(t, ['dlq', 'redrive', 'cli-pay', '--json'])), { topic: 'cli-pay', moved: 1 })
    assert.deepEqual(await list(), [])
    assert.equal(await ok(t, ['dlq', 'list', 'cli-pay']), 'no dead letters for cli-pay\n')
    const back = await client.read('cli-pay', 0, receipt.offset + 1)
    assert.deepEqual(
      back.map((m) => [m.id, m.data]),
      [[letter!['id'], { order: 7 }]],
    )
  })

  it('an unknown topic exits 1 with TOPIC_NOT_FOUND on stderr', async (t) => {
    const runs = await Promise.all([
      sluice(t, ['publish', 'cli-missing', 'x']),
      sluice(t, ['consume', 'cli-missing', '--subscription', 's', '--json']),
    ])
    for (const run of runs) {
      assert.equal(run.code, 1)
      assert.equal(run.stdout, '')
      assert.match(run.stderr, /^sluice: TOPIC_NOT_FOUND: topic "cli-missing" not found/)
    }
  })

  it('bad flags exit non-zero with a usage error, before connecting', async (t) => {
    const cases: [string[], RegExp][] = [
      [['topics', 'create', 'x', '--partitions', '0'], /option '--partitions <n>' argument '0' is invalid/],
      [['consume', 'x', '--from', 'yesterday'], /Allowed choices are earliest, latest/],
      [['consume', 'x'], /required option '--subscription <name>' not specified/],
      [['publish', 'x', 'm', '--header', 'novalue'], /argument 'novalue' is invalid\. expected name=value/],
    ]
    const runs = await Promise.all(cases.map(([args]) => sluice(t, [...args, '--url', 'sluice://127.0.0.1:1'])))
    runs.forEach((run, i) => {
      const [args, pattern] = cases[i]!
      assert.notEqual(run.code, 0, args.join(' '))
      assert.match(run.stderr, pattern, args.join(' '))
      assert.doesNotMatch(run.stderr, /UNAVAILABLE/, 'rejected before connecting')
    })
  })

  it('an unreachable broker exits 1 with UNAVAILABLE', async (t) => {
    const run = await sluice(t, ['topics', 'list', '--url', 'sluice://127.0.0.1:1', '--connect-timeout-ms', '300'])
    assert.equal(run.code, 1)
    assert.match(run.stderr, /^sluice: UNAVAILABLE: cannot reach the broker at 127\.0\.0\.1:1/)
  })

  it('serve on a port already in use prints one line naming the port and the flag to change it, and exits 1', async (t) => {
    const taken = createServer()
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve))
    cleanup(t, () => new Promise((resolve) => taken.close(resolve)))
    const port = (taken.address() as AddressInfo).port
    const runs = await Promise.all([
      sluice(t, ['serve', '--data-dir', 'memory:', '--port', String(port), '--http-port', '0'], { timeoutMs: 30_000 }),
      sluice(t, ['serve', '--data-dir', 'memory:', '--port', '0', '--http-port', String(port)], { timeoutMs: 30_000 }),
    ])
    const flags = ['--port', '--http-port']
    runs.forEach((run, i) => {
      assert.equal(run.code, 1, run.stderr)
      assert.equal(run.stdout, '')
      const lines = run.stderr.split('\n').filter((line) => line.length > 0)
      assert.equal(lines.length, 1, `one line, no stack: ${run.stderr}`)
      assert.match(
        lines[0]!,
        new RegExp(`^sluice: UNAVAILABLE: the (protocol|HTTP) port ${port} on 127\\.0\\.0\\.1 is already in use`),
      )
      assert.match(lines[0]!, new RegExp(`pick another port with ${flags[i]!} <port>`))
    })
  })

  it('works on a data directory with --url file:<dir>', async (t) => {
    const url = `file:${await tempDir(t, 'sluice-cli-')}`
    const local = await open({ url })
    await local.createTopic('cli-local')
    await local.close()
    await ok(t, ['publish', 'cli-local', '{"local":true}', '--url', url])
    const printed = await ok(t, ['consume', 'cli-local', '--subscription', 's', '--count', '1', '--url', url])
    assert.equal(printed, '0:0  {"local":true}\n')
  })

  it('check prints one row per capability, what the runtime has and what it means; --json the Capabilities', async (t) => {
    const memory = knownRuntimes.find((r) => r.url === 'memory:')!.capabilities!
    const [human, json, remote] = await Promise.all([
      ok(t, ['check', '--url', 'memory:']),
      ok(t, ['check', '--url', 'memory:', '--json']),
      // The broker of these tests runs on a memory: engine: its clients have what it has, every field crossing.
      ok(t, ['check', '--json']),
    ])
    const lines = human.split('\n')
    assert.equal(lines[0], 'runtime memory:')
    assert.match(lines[2]!, /^CAPABILITY +HAS +MEANING$/)
    const rows = new Map(lines.slice(3, 3 + capabilityNames.length).map((line) => [line.split(/ {2,}/)[0], line]))
    assert.deepEqual([...rows.keys()], [...capabilityNames])
    assert.match(rows.get('durability')!, /^durability +memory +when a publish counts as stored/)
    assert.match(rows.get('orderings')!, /^orderings +none, key, partition, global +/)
    assert.match(rows.get('delayedDelivery')!, /^delayedDelivery +yes +publish with delayMs or deliverAt$/)
    assert.match(human, /fails with UNSUPPORTED/)
    assert.deepEqual(JSON.parse(json) as Capabilities, memory)
    assert.deepEqual(JSON.parse(remote) as Capabilities, memory)
    const broker = await ok(t, ['check'])
    assert.match(
      broker.split('\n')[0]!,
      /^runtime sluice:\/\/127\.0\.0\.1:\d+ \(a broker client: what its broker's runtime has\)$/,
    )
  })
})
