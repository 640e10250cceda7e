import { prelude } from './prelude.ts'

/** The scripts of a subscription on one partition: join, lease, settle, dead letters, peek. */

/**
 * Joins a subscription on one partition, creating its state on first use
 * (cursor at the first retained offset, or the end for `latest`).
 * KEYS: subscription keys. ARGV: gen (a new one if created), startAt,
 * ordering, delivery. Answers {gen, ordering, delivery} as stored.
 */
export const joinScript = `${prelude}
local S = subKeys(1)
S.name = ARGV[5]
local existing = redis.call('HGET', S.meta, 'gen')
if existing then
  return { existing, redis.call('HGET', S.meta, 'ordering'), redis.call('HGET', S.meta, 'delivery') }
end
-- The next offset to be written: the stream remembers its last id even when trimmed empty.
local cursor = 0
if redis.call('EXISTS', S.log) == 1 then
  local info = redis.call('XINFO', 'STREAM', S.log)
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then cursor = tonumber(string.sub(info[i + 1], 3)) end
  end
  if ARGV[2] ~= 'latest' then
    local first = redis.call('XRANGE', S.log, '-', '+', 'COUNT', 1)[1]
    if first then cursor = tonumber(string.sub(first[1], 3)) - 1 end
  end
end
redis.call('HSET', S.meta, 'gen', ARGV[1], 'cursor', s(cursor), 'floor', s(cursor), 'ordering', ARGV[3],
  'delivery', ARGV[4], 'acked', 0, 'redeliveries', 0, 'deadLettered', 0, 'dropped', 0)
redis.call('HSET', S.floors, S.name, s(cursor))
return { ARGV[1], ARGV[3], ARGV[4] }
`

/**
 * Gives a subscription another ordering and delivery (its consumers are
 * gone, so the caller may). When the ordering changes, the order keys held
 * under the old one mean nothing under the new one (`#` for a partition, `k…`
 * per key): every message waiting on one is offered again, and the keys are
 * taken again under the new ordering, earliest offset first, by what still
 * holds one (a lease, a redelivery to come, a dead letter to write), so a
 * redelivery still goes before later messages of its key.
 * KEYS: subscription keys. ARGV: ordering, delivery, now.
 */
export const reorderScript = `${prelude}
local S = subKeys(1)
local ordering, now = ARGV[1], tonumber(ARGV[3])
local old = redis.call('HGET', S.meta, 'ordering')
redis.call('HSET', S.meta, 'ordering', ordering, 'delivery', ARGV[2])
if old == ordering then return 0 end
for _, member in ipairs(redis.call('ZRANGE', S.blocked, 0, -1)) do
  redis.call('ZADD', S.ready, now, rm(tonumber(string.sub(member, -16))))
end
redis.call('DEL', S.blocked, S.busy)
local holders = {}
for _, o in ipairs(redis.call('HKEYS', S.lease)) do holders[#holders + 1] = tonumber(o) end
for _, o in ipairs(redis.call('ZRANGE', S.dead, 0, -1)) do holders[#holders + 1] = tonumber(o) end
for _, o in ipairs(redis.call('ZRANGE', S.ready, 0, -1)) do
  if redis.call('HEXISTS', S.attempts, s(tonumber(o))) == 1 then holders[#holders + 1] = tonumber(o) end
end
table.sort(holders)
for _, offset in ipairs(holders) do
  local entry = entryAt(S.log, offset)
  local key = entry and orderKeyOf(ordering, fieldsOf(entry)) or false
  if key and not redis.call('HGET', S.busy, key) then redis.call('HSET', S.busy, key, s(offset)) end
  local lease = parseLease(redis.call('HGET', S.lease, s(offset)))
  if lease then
    redis.call('HSET', S.lease, s(offset), s(lease.attempt) .. '|' .. s(lease.deadline) .. '|' .. s(lease.granted) .. '|' .. (key or ''))
  end
end
return 1
`

/**
 * Leases up to `max` messages of one partition: first reclaims leases past
 * their deadline (a failed delivery each), then offers what is due again,
 * then new messages from the cursor, holding back any whose order key is
 * busy. (At-most-once leases too: a lease it loses counts as done, never offered again.)
 * KEYS: subscription keys. ARGV: gen, now, max, ackTimeoutMs, maxAttempts,
 * backoffInitialMs, backoffMultiplier, backoffMaxMs, (unused), name.
 * Answers {'gone'} or {'ok', wakeAt, deadCount, n, then per message: offset,
 * attempt, fields}.
 */
export const leaseScript = `${prelude}
local S = subKeys(1)
S.name = ARGV[10]
if not checkGen(S, ARGV[1]) then return {'gone'} end
local now, max, ackTimeout, maxAttempts = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])
local initial, multiplier, maxDelay = tonumber(ARGV[6]), tonumber(ARGV[7]), tonumber(ARGV[8])
local ordering = redis.call('HGET', S.meta, 'ordering')
for _, o in ipairs(redis.call('ZRANGEBYSCORE', S.deadlines, '-inf', now, 'LIMIT', 0, 1000)) do
  local lease = parseLease(redis.call('HGET', S.lease, o))
  redis.call('ZREM', S.deadlines, o)
  redis.call('HDEL', S.lease, o)
  local attempts = tonumber(redis.call('HGET', S.attempts, o) or '1')
  local delay = math.min(maxDelay, initial * math.pow(multiplier, math.max(0, attempts - 1)))
  failed(S, tonumber(o), lease and lease.key or false, now, math.floor(delay), maxAttempts, 'lease expired')
end
local out = {}
local count = 0
local function grant(offset, entry, key)
  if key then redis.call('HSET', S.busy, key, s(offset)) end
  local attempt = redis.call('HINCRBY', S.attempts, s(offset), 1)
  if attempt > 1 then redis.call('HINCRBY', S.meta, 'redeliveries', 1) end
  local deadline = now + ackTimeout
  redis.call('HSET', S.lease, s(offset), s(attempt) .. '|' .. s(deadline) .. '|' .. s(now) .. '|' .. (key or ''))
  redis.call('ZADD', S.deadlines, deadline, s(offset))
  out[#out + 1] = s(offset)
  out[#out + 1] = attempt
  out[#out + 1] = entry[2]
  count = count + 1
end
-- Whether an offset may go now, else it waits on its busy key.
local function mayGo(offset, key)
  if not key then return true end
  local holder = redis.call('HGET', S.busy, key)
  if holder == false or holder == s(offset) then return true end
  redis.call('ZADD', S.blocked, 0, blockedMember(key, offset))
  return false
end
for _, o in ipairs(redis.call('ZRANGEBYSCORE', S.ready, '-inf', now, 'LIMIT', 0, max * 4 + 16)) do
  if count >= max then break end
  redis.call('ZREM', S.ready, o)
  local offset = tonumber(o)
  local entry = entryAt(S.log, offset)
  if entry then
    local key = orderKeyOf(ordering, fieldsOf(entry))
    if mayGo(offset, key) then grant(offset, entry, key) end
  end
end
local cursor = tonumber(redis.call('HGET', S.meta, 'cursor'))
local scanned = 0
while count < max and scanned < 2000 do
  -- Read no more than can be granted: every entry read here is copied into Lua, payload and all.
  local want = math.min(500, max - count)
  local entries = redis.call('XRANGE', S.log, '0-' .. s(cursor + 1), '+', 'COUNT', want)
  if #entries == 0 then break end
  for _, entry in ipairs(entries) do
    local offset = tonumber(string.sub(entry[1], 3)) - 1
    if count >= max then break end
    cursor = offset + 1
    scanned = scanned + 1
    local f = fieldsOf(entry)
    local at = tonumber(f['a'] or '0')
    if at > now then
      redis.call('ZADD', S.ready, at, rm(offset))
    else
      local key = orderKeyOf(ordering, f)
      if mayGo(offset, key) then grant(offset, entry, key) end
    end
  end
  if #entries < want then break end
end
redis.call('HSET', S.meta, 'cursor', s(cursor))
flushSettled(S, now)
maybeTrim(S, now, true)
local wake = -1
local nextReady = redis.call('ZRANGE', S.ready, 0, 0, 'WITHSCORES')
if nextReady[2] then wake = tonumber(nextReady[2]) end
local nextDeadline = redis.call('ZRANGE', S.deadlines, 0, 0, 'WITHSCORES')
if nextDeadline[2] and (wake < 0 or tonumber(nextDeadline[2]) < wake) then wake = tonumber(nextDeadline[2]) end
local result = { 'ok', s(wake), redis.call('ZCARD', S.dead), count }
for _, v in ipairs(out) do result[#result + 1] = v end
return result
`

/**
 * Settles leases of one partition, each only if its attempt still holds it
 * and its deadline has not passed (else 0: the lease was lost).
 * KEYS: subscription keys. ARGV: gen, now, action ('ack' | 'nack' |
 * 'extend' | 'release'), maxAttempts, reason, maxLeaseMs, name, channel,
 * partition, count, then per lease: offset, attempt, ms (nack delay or
 * extend duration). Answers per lease 1 or 0 (nack: 2 when it is now a dead
 * letter to write), or {'gone'}.
 */
export const settleScript = `${prelude}
local S = subKeys(1)
S.name = ARGV[7]
if not checkGen(S, ARGV[1]) then return {'gone'} end
local now, action, maxAttempts, reason, maxLease = tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local out = {}
for r = 0, tonumber(ARGV[10]) - 1 do
  local o, attempt, ms = ARGV[11 + r * 3], tonumber(ARGV[12 + r * 3]), tonumber(ARGV[13 + r * 3])
  local lease = parseLease(redis.call('HGET', S.lease, o))
  if lease == nil or lease.attempt ~= attempt or lease.deadline <= now then
    out[#out + 1] = 0
  elseif action == 'extend' then
    local deadline = math.min(now + ms, lease.granted + maxLease)
    redis.call('HSET', S.lease, o, s(lease.attempt) .. '|' .. s(deadline) .. '|' .. s(lease.granted) .. '|' .. (lease.key or ''))
    redis.call('ZADD', S.deadlines, deadline, o)
    out[#out + 1] = 1
  else
    redis.call('HDEL', S.lease, o)
    redis.call('ZREM', S.deadlines, o)
    local offset = tonumber(o)
    if action == 'ack' then
      settle(S, offset, lease.key, now, 'acked')
      out[#out + 1] = 1
    elseif action == 'release' then
      local left = redis.call('HINCRBY', S.attempts, o, -1)
      if left <= 0 then redis.call('HDEL', S.attempts, o) end
      redis.call('ZADD', S.ready, now, rm(tonumber(o)))
      wakeNeeded = true
      out[#out + 1] = 1
    else
      out[#out + 1] = (failed(S, offset, lease.key, now, ms, maxAttempts, reason) == 'dead') and 2 or 1
    end
  end
end
flushSettled(S, now)
if wakeNeeded then redis.call('PUBLISH', ARGV[8], ARGV[9]) end
return out
`

/**
 * Claims dead letters still to be written (none claimed by another writer
 * whose claim has not run out), for `claimMs`. KEYS: subscription keys.
 * ARGV: gen, now, claimMs, max. Answers {'gone'} or {'ok', then per letter:
 * offset, attempts, reason, fields}.
 */
export const claimDeadScript = `${prelude}
local S = subKeys(1)
if not checkGen(S, ARGV[1]) then return {'gone'} end
local now, claim = tonumber(ARGV[2]), tonumber(ARGV[3])
local out = { 'ok' }
for _, o in ipairs(redis.call('ZRANGEBYSCORE', S.dead, '-inf', now, 'LIMIT', 0, tonumber(ARGV[4]))) do
  redis.call('ZADD', S.dead, now + claim, o)
  local entry = entryAt(S.log, tonumber(o))
  out[#out + 1] = o
  out[#out + 1] = redis.call('HGET', S.attempts, o) or '0'
  out[#out + 1] = redis.call('HGET', S.why, o) or ''
  out[#out + 1] = entry and entry[2] or {}
end
return out
`

/**
 * Marks claimed dead letters done (their copy written, or dropped): each
 * acknowledged and its order key freed. KEYS: subscription keys. ARGV: gen,
 * now, counter ('deadLettered' | 'dropped'), name, offsets...
 */
export const deadDoneScript = `${prelude}
local S = subKeys(1)
S.name = ARGV[4]
if not checkGen(S, ARGV[1]) then return {'gone'} end
local now = tonumber(ARGV[2])
local ordering = redis.call('HGET', S.meta, 'ordering')
for i = 5, #ARGV do
  local o = ARGV[i]
  if redis.call('ZREM', S.dead, o) == 1 then
    redis.call('HDEL', S.why, o)
    local entry = entryAt(S.log, tonumber(o))
    local key = entry and orderKeyOf(ordering, fieldsOf(entry)) or false
    settle(S, tonumber(o), key, now, ARGV[3])
  end
end
flushSettled(S, now)
return {'ok'}
`

/**
 * Up to `max` messages of one partition the subscription has not
 * acknowledged, from its floor (from the first retained one when it does not
 * exist yet), without leasing them. KEYS: subscription keys. ARGV: max.
 * Answers entries as XRANGE does.
 */
export const peekScript = `${prelude}
local S = subKeys(1)
local max = tonumber(ARGV[1])
local floor = redis.call('HGET', S.meta, 'floor')
local cursor = floor and tonumber(floor) or 0
local out = {}
local scanned = 0
while #out < max and scanned < 100000 do
  local entries = redis.call('XRANGE', S.log, '0-' .. s(cursor + 1), '+', 'COUNT', 500)
  if #entries == 0 then break end
  for _, e in ipairs(entries) do
    local offset = tonumber(string.sub(e[1], 3)) - 1
    cursor = offset + 1
    scanned = scanned + 1
    if #out < max and redis.call('ZSCORE', S.acked, s(offset)) == false then out[#out + 1] = e end
  end
end
return out
`
