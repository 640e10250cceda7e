import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const repoRoot = fileURLToPath(new URL('../', import.meta.url))
const runScript = fileURLToPath(new URL('../examples/order-pipeline/run.ts', import.meta.url))
const timeoutMs = 60_000

/** Whether any process of the group led by `pid` exists (zombies included). */
function groupAlive(pid: number): boolean {
  try {
    process.kill(-pid, 0)
    return true
  } catch {
    return false
  }
}

function killGroup(pid: number): void {
  if (groupAlive(pid)) process.kill(-pid, 'SIGKILL')
}

/**
 * Whether the group is still there after `graceMs`. A grace, because tsx's
 * esbuild helper process (started when a file is compiled afresh) exits on its
 * own a moment after its parent.
 */
async function groupOutlives(pid: number, graceMs: number): Promise<boolean> {
  const deadline = Date.now() + graceMs
  while (groupAlive(pid)) {
    if (Date.now() > deadline) return true
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  return false
}

/** The order ids of the lines that match `pattern` (its first group), in output order. */
function ordersIn(lines: readonly string[], pattern: RegExp): string[] {
  return lines.flatMap((line) => pattern.exec(line)?.[1] ?? [])
}

const allOrders = Array.from({ length: 10 }, (_, i) => `o-${i + 1}`)
const sorted = (ids: readonly string[]): string[] => [...ids].sort((a, b) => Number(a.slice(2)) - Number(b.slice(2)))

test(
  'the order pipeline example: inventory handles all 10 orders, email sends the 5 it missed while down after its restart, none twice',
  { timeout: timeoutMs + 10_000 },
  async () => {
    // Its own process group, so that whatever it started can be killed with it if it hangs.
    const child = spawn(process.execPath, ['--import', 'tsx', runScript], {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk))
    let timedOut = false
    const timer = setTimeout(() => {
      timedOut = true
      killGroup(child.pid!)
    }, timeoutMs)
    let code: number | null
    try {
      code = await new Promise<number | null>((resolve, reject) => {
        child.once('error', reject)
        child.once('close', (exitCode) => resolve(exitCode))
      })
    } finally {
      clearTimeout(timer)
    }
    const leftOver = await groupOutlives(child.pid!, 5000)
    killGroup(child.pid!)

    assert.equal(timedOut, false, `run.ts did not finish within ${timeoutMs / 1000} s:\n${output}`)
    assert.equal(code, 0, `run.ts exited with ${code}:\n${output}`)
    assert.equal(leftOver, false, `run.ts left child processes running:\n${output}`)

    const lines = output.split('\n')
    const published = ordersIn(lines, /^\[checkout\] charged .* for order (o-\d+) /)
    const reserved = ordersIn(lines, /^\[inventory\] reserved .* for order (o-\d+) /)
    const emailed = ordersIn(lines, /^\[email\] sent the confirmation for order (o-\d+) /)
    assert.deepEqual(published, allOrders, output)
    assert.deepEqual(sorted(reserved), allOrders, `inventory handled each order once:\n${output}`)
    assert.deepEqual(sorted(emailed), allOrders, `email sent each confirmation once:\n${output}`)

    // The email service subscribes twice: at the start, and again after it was stopped.
    const starts = lines.flatMap((line, i) => (/^\[email\] subscribed to /.test(line) ? [i] : []))
    assert.equal(starts.length, 2, output)
    const stopped = lines.findIndex((line) => line.startsWith('[email] stopped'))
    assert.ok(
      stopped > starts[0]! && stopped < starts[1]!,
      `the email service stopped between its two starts:\n${output}`,
    )
    const beforeRestart = ordersIn(lines.slice(0, starts[1]), /^\[email\] sent the confirmation for order (o-\d+) /)
    const afterRestart = ordersIn(lines.slice(starts[1]), /^\[email\] sent the confirmation for order (o-\d+) /)
    assert.deepEqual(sorted(beforeRestart), allOrders.slice(0, 5), output)
    assert.deepEqual(
      sorted(afterRestart),
      allOrders.slice(5),
      `after its restart, email sent the 5 it missed:\n${output}`,
    )
    // Orders 6-10 were placed while the email service was down.
    for (const id of allOrders.slice(5)) {
      const placedAt = lines.findIndex((line) => new RegExp(`^\\[checkout\\] charged .* for order ${id} `).test(line))
      assert.ok(placedAt > stopped && placedAt < starts[1]!, `order ${id} was placed while email was down:\n${output}`)
    }
    assert.match(output, /email service was down for orders o-6\.\.o-10; on restart it sent all 5 missed emails/)
  },
)
