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
 * then its records (as appendScript: idWindowMs, the pack, the payloads). Answers {'repeat', outcome}, {'lost'},
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
local inputState = redis.call('HMGET', input[4], 'idsSince', 'idsCurrent')
local cur, old = dedupTables(input, tonumber(ARGV[2]), span, inputState[1], inputState[2])
local found = redis.call('HGET', cur, txKey) or redis.call('HGET', old, txKey)
if found then
  local outcome, t = string.match(found, '^(.*)|(%d+)$')
  if outcome and tonumber(ARGV[2]) - tonumber(t) < txWindow then return { 'repeat', outcome } end
end
local now, o, attempt = tonumber(ARGV[2]), ARGV[4], tonumber(ARGV[5])
local lease = parseLease(redis.call('HGET', S.lease, o))
if lease == nil or lease.attempt ~= attempt or lease.deadline <= now then return {'lost'} end
-- Every output topic must still exist before anything changes.
local plan, gone = appendPlan(17, 12, tonumber(ARGV[10]))
if gone then return { 'gone', gone - 1 } end
redis.call('HDEL', S.lease, o)
redis.call('ZREM', S.deadlines, o)
settle(S, tonumber(o), lease.key, now, 'acked')
flushSettled(S, now)
local parts = {}
for g, p in ipairs(plan) do
  local out = appendRecords(p.P, now, p.channel, p.partition, p.span, p.base, p.count)
  local items = {}
  for i = 1, #out, 2 do items[#items + 1] = out[i] .. ":" .. out[i + 1] end
  parts[g] = table.concat(items, ",")
end
local outcome = table.concat(parts, ';')
redis.call('HSET', cur, txKey, outcome .. '|' .. string.format('%d', now))
if wakeNeeded then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return { 'ok', outcome }
`
