import type { Row } from './report.ts'

/**
 * The comparison's outputs: a table with Sluice/peer ratios (Markdown, for
 * the terminal and BENCHMARKS.md) and an SVG bar chart a reader can open.
 */

const reference = 'sluice fsync'

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined) return ''
  return n.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: digits })
}

/**
 * Sluice fsync against this row, same scenario and settings: msgs/s of Sluice
 * over the peer's, or for latency the peer's p99 over Sluice's. Above 1,
 * Sluice is ahead.
 */
export function ratio(rows: readonly Row[], row: Row): number | null {
  const ref = rows.find((r) => r.system === reference && r.scenario === row.scenario && r.settings === row.settings)
  if (ref === undefined || row.system === reference || row.msgsPerSec === 0 || ref.msgsPerSec === 0) return null
  if (row.scenario === 'latency') {
    return ref.p99Ms !== undefined && row.p99Ms !== undefined && ref.p99Ms > 0 ? row.p99Ms / ref.p99Ms : null
  }
  return ref.msgsPerSec / row.msgsPerSec
}

export function comparisonTable(rows: readonly Row[], durability: ReadonlyMap<string, string>): string {
  const header = ['scenario', 'settings', 'system', 'msgs/s', 'MB/s', 'p50 ms', 'p99 ms', 'sluice fsync ÷ this', 'note']
  const body = rows.map((r) => {
    const x = ratio(rows, r)
    return [
      r.scenario,
      r.settings,
      r.system,
      r.settings === 'not measured' ? '—' : fmt(r.msgsPerSec),
      fmt(r.mbPerSec, 1),
      fmt(r.p50Ms, 3),
      fmt(r.p99Ms, 3),
      x === null ? '' : `${x.toFixed(2)}×`,
      r.note ?? (r.scenario === 'publish' ? (durability.get(r.system) ?? '') : ''),
    ]
  })
  const line = (cells: string[]): string => `| ${cells.map((c) => c.replaceAll('|', '/')).join(' | ')} |`
  return [line(header), `|${header.map(() => '---').join('|')}|`, ...body.map(line)].join('\n')
}

function escape(s: string): string {
  return s.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;')
}

/** Horizontal bars, one group per scenario (1 KiB publish and end-to-end, fan-out, drain), one bar per system. */
export function comparisonChart(rows: readonly Row[], machine: string): string {
  const groups = [
    {
      title: 'publish, 1 KiB, confirmed (msgs/s)',
      match: (r: Row) => r.scenario === 'publish' && r.settings.startsWith('1024 B'),
    },
    {
      title: 'end-to-end at-least-once, 1 KiB (msgs/s)',
      match: (r: Row) => r.scenario === 'end-to-end' && r.settings.startsWith('1024 B'),
    },
    { title: 'fan-out to 4 subscriptions (msgs/s each)', match: (r: Row) => r.scenario === 'fan-out' },
    { title: 'draining a backlog (msgs/s)', match: (r: Row) => r.scenario === 'drain' },
  ]
  const barHeight = 16
  const labelWidth = 230
  const barWidth = 520
  const parts: string[] = []
  let y = 40
  for (const group of groups) {
    const bars = rows.filter((r) => group.match(r) && r.msgsPerSec > 0)
    if (bars.length === 0) continue
    const max = Math.max(...bars.map((b) => b.msgsPerSec))
    parts.push(`<text x="10" y="${y}" font-weight="bold">${escape(group.title)}</text>`)
    y += 10
    for (const bar of bars) {
      const w = Math.max(1, Math.round((bar.msgsPerSec / max) * barWidth))
      const color = bar.system.startsWith('sluice') ? '#2b6cb0' : '#a0aec0'
      parts.push(
        `<text x="${labelWidth - 6}" y="${y + 12}" text-anchor="end">${escape(bar.system)}</text>`,
        `<rect x="${labelWidth}" y="${y}" width="${w}" height="${barHeight - 3}" fill="${color}"/>`,
        `<text x="${labelWidth + w + 6}" y="${y + 12}">${fmt(bar.msgsPerSec)}</text>`,
      )
      y += barHeight
    }
    y += 24
  }
  const height = y + 10
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="900" height="${height}" font-family="sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Sluice and its peers, same machine, same run (${escape(machine)})</text>`,
    ...parts,
    '</svg>',
  ].join('\n')
}
