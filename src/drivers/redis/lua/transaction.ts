import { appendPrelude } from './append.ts'
import { prelude } from './prelude.ts'

/**
 * Acknowledges one lease and appends the transaction's outputs, all in one
 * script: both happen or neither. Only where every key is on one server
 * (a single Redis, not a cluster). A repeat of `txId` (an answer that was
 * lost) gets the first outcome.
 * KEYS: the input's subscription keys, the input partition's append keys
 * (log, ids, ids2, meta), then 4 append keys per output group. ARGV: gen,
 * now, name, offset, attempt, txId, txWindowMs, channel, partition, groups,
 * spanMs, then per group: topicGen, channel, partition, count, spanMs,
 * then its records (9 values each, as appendScript). Answers {'repeat', outcome}, {'lost'},
 * {'gone', group index}, or {'ok', outcome} where outcome is
 * "offset:duplicate,...;..." per group.
 */
export const commitScript = `${prelude}${appendPrelude}
local S = subKeys(1)
S.name = ARGV[3]
if not checkGen(S, ARGV[1]) then return {'lost'} end
local input = { KEYS[14], KEYS[15], KEYS[16], KEYS[17] }
local span = tonumber(ARGV[11])
local txWindow = tonumber(ARGV[7])
local txKey = 'tx:' .. ARGV[6]
local cur, old = dedupTables(input, tonumber(ARGV[2]), span)
local found = redis.call('HGET', cur, txKey) or redis.call('HGET', old, txKey)
if found then
  local outcome, t = string.match(found, '^(.*)|(%d+)$')
  if outcome and tonumber(ARGV[2]) - tonumber(t) < txWindow then return { 'repeat', outcome } end
end
local now, o, attempt = tonumber(ARGV[2]), ARGV[4], tonumber(ARGV[5])
local lease = parseLease(redis.call('HGET', S.lease, o))
if lease == nil or lease.attempt ~= attempt or lease.deadline <= now then return {'lost'} end
-- Every output topic must still exist before anything changes.
local groups = tonumber(ARGV[10])
local at = 12
local plan = {}
for g = 1, groups do
  local keyBase = 17 + (g - 1) * 4
  local P = { KEYS[keyBase + 1], KEYS[keyBase + 2], KEYS[keyBase + 3], KEYS[keyBase + 4] }
  if redis.call('HGET', P[4], 'gen') ~= ARGV[at] then return { 'gone', g - 1 } end
  plan[g] = { P = P, gen = ARGV[at], channel = ARGV[at + 1], partition = ARGV[at + 2], count = tonumber(ARGV[at + 3]),
    span = tonumber(ARGV[at + 4]), base = at + 5 }
  at = at + 5 + tonumber(ARGV[at + 3]) * 9
end
redis.call('HDEL', S.lease, o)
redis.call('ZREM', S.deadlines, o)
settle(S, tonumber(o), lease.key, now, 'acked')
flushSettled(S, now)
local parts = {}
for g = 1, groups do
  local p = plan[g]
  local out = appendRecords(p.P, p.gen, now, p.channel, p.partition, txWindow, p.span, p.base, p.count)
  local items = {}
  for i = 1, #out, 2 do items[#items + 1] = out[i] .. ":" .. out[i + 1] end
  parts[g] = table.concat(items, ",")
end
local outcome = table.concat(parts, ';')
redis.call('HSET', cur, txKey, outcome .. '|' .. string.format('%d', now))
if wakeNeeded then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return { 'ok', outcome }
`
