/**
 * The Lua scripts of the Redis driver: everything that must be atomic on the
 * server. Each runs on the keys of ONE partition (they share a hash tag, so
 * one cluster slot), with the time passed in by the caller's clock (so a
 * test's fake clock moves Redis time too, and every script judges leases by
 * the same `now` it was given).
 *
 * A partition's log is a stream whose ids are `0-<offset + 1>`: offsets are
 * dense and start at 0, as on every other runtime. A subscription's state on
 * a partition:
 * - `meta` hash: gen (fences a deleted and re-created subscription), cursor
 *   (the next offset never looked at), floor (every offset below is
 *   acknowledged), ordering, delivery and counters;
 * - `acked` zset: acknowledged offsets at or above the floor;
 * - `ready` zset: offsets to offer again (redelivery, a delayed message, one
 *   released by its key), scored by when they become visible;
 * - `lease` hash: offset -> "attempt|deadline|grantedAt|orderKey";
 * - `deadlines` zset: offset -> lease deadline (for reclaiming);
 * - `attempts` hash: offset -> deliveries so far;
 * - `busy` hash: order key -> the offset holding it (in flight or waiting to
 *   be offered again), so later messages of the key wait;
 * - `blocked` zset (by lex): "<len><key><offset>" for messages waiting on a
 *   busy key, earliest offset first;
 * - `dead` zset: offsets out of attempts whose dead-letter copy is still to be
 *   written, scored by when a claim on them runs out (0: unclaimed); `why`
 *   hash: offset -> reason.
 */

/** Shared by every script. `ARGV` layout is per script; numbers cross as decimal strings. */
const prelude = `
local function s(n) return string.format('%d', n) end
-- An offset as a member of the ready zset: zero-padded, so that members of equal score (messages due at the same
-- time) come in offset order, as the zset orders ties by bytes ("10" sorts before "9"). Read back with tonumber.
local function rm(n) return string.format('%016d', n) end
local trimStep = 1024
-- Set when something became ready now, so that waiting consumers elsewhere are told.
local wakeNeeded = false
local function fieldsOf(entry)
  local t = {}
  local f = entry[2]
  for i = 1, #f, 2 do t[f[i]] = f[i + 1] end
  return t
end
local function entryAt(log, offset)
  local id = '0-' .. s(offset + 1)
  return redis.call('XRANGE', log, id, id)[1]
end
-- The key a message is ordered by in this subscription, or false when it is not held back by any.
local function orderKeyOf(ordering, f)
  if ordering == 'partition' or ordering == 'global' then return '#' end
  if ordering == 'key' and f['k'] then return 'k' .. f['k'] end
  return false
end
local function blockedMember(key, offset) return string.format('%08d', #key) .. key .. string.format('%016d', offset) end
-- Frees the order key an offset held: the earliest message waiting on it takes it and is offered at once.
local function releaseKey(S, key, offset, now)
  if not key or redis.call('HGET', S.busy, key) ~= s(offset) then return end
  local prefix = string.format('%08d', #key) .. key
  local next = redis.call('ZRANGEBYLEX', S.blocked, '[' .. prefix, '[' .. prefix .. '\\255', 'LIMIT', 0, 1)[1]
  if next then
    redis.call('ZREM', S.blocked, next)
    local nextOffset = tonumber(string.sub(next, #prefix + 1))
    redis.call('HSET', S.busy, key, s(nextOffset))
    redis.call('ZADD', S.ready, now, rm(nextOffset))
    wakeNeeded = true
  else
    redis.call('HDEL', S.busy, key)
  end
end
-- Deletes what every subscription of the partition has acknowledged, in steps of trimStep messages or once a
-- minute (as the engine deletes whole segments, and seals a quiet one after a minute), not one by one: recent
-- acknowledged messages stay readable a while, and the look at every floor runs once a step, not per ack.
local function maybeTrim(S, now, quietOnly)
  local trimmed = tonumber(redis.call('HGET', S.trim, 'to') or '0')
  local atText = redis.call('HGET', S.trim, 'at')
  if not atText then
    -- The minute is counted from the first look, not from 1970.
    redis.call('HSET', S.trim, 'at', s(now))
    return
  end
  local at = tonumber(atText)
  local ownFloor = tonumber(redis.call('HGET', S.meta, 'floor') or '0')
  local quiet = now - at >= 60000
  if ownFloor <= trimmed or (quietOnly and not quiet) or (not quiet and ownFloor - trimmed < trimStep) then return end
  local lowest = nil
  for _, v in ipairs(redis.call('HVALS', S.floors)) do
    local f = tonumber(v)
    if lowest == nil or f < lowest then lowest = f end
  end
  if lowest ~= nil and lowest > trimmed and (quiet or lowest - trimmed >= trimStep) then
    redis.call('XTRIM', S.log, 'MINID', '0-' .. s(lowest + 1))
    redis.call('HSET', S.trim, 'to', s(lowest), 'at', s(now))
  end
end
-- Offsets acknowledged by this script run, with the counter each counts in; flushSettled raises the floor once.
local settled = {}
local settledCounts = {}
-- Acknowledges one offset: frees its order key now; the floor moves in flushSettled, once per script run.
local function settle(S, offset, key, now, counter)
  redis.call('HDEL', S.attempts, s(offset))
  releaseKey(S, key, offset, now)
  settled[#settled + 1] = offset
  settledCounts[counter] = (settledCounts[counter] or 0) + 1
end
-- Raises the floor past what this run acknowledged (and what was acknowledged above it before), counts, and
-- trims what every subscription has acknowledged. Called at the end of every script that may settle.
local function flushSettled(S, now)
  if #settled == 0 then return end
  for counter, n in pairs(settledCounts) do redis.call('HINCRBY', S.meta, counter, n) end
  table.sort(settled)
  local floor = tonumber(redis.call('HGET', S.meta, 'floor'))
  local above = {}
  for _, o in ipairs(settled) do
    if o == floor then
      floor = floor + 1
    elseif o > floor then
      above[#above + 1] = o
      above[#above + 1] = s(o)
    end
  end
  for i = 1, #above, 2000 do
    redis.call('ZADD', S.acked, unpack(above, i, math.min(#above, i + 1999)))
  end
  while true do
    local first = redis.call('ZRANGE', S.acked, 0, 0)[1]
    if first == nil or tonumber(first) > floor then break end
    redis.call('ZREM', S.acked, first)
    if tonumber(first) == floor then floor = floor + 1 end
  end
  redis.call('HSET', S.meta, 'floor', s(floor))
  redis.call('HSET', S.floors, S.name, s(floor))
  settled = {}
  settledCounts = {}
  maybeTrim(S, now, false)
end
local function parseLease(value)
  if not value then return nil end
  local attempt, deadline, granted, key = string.match(value, '^(%d+)|(%d+)|(%d+)|(.*)$')
  return { attempt = tonumber(attempt), deadline = tonumber(deadline), granted = tonumber(granted), key = (key ~= '' and key) or false }
end
local function subKeys(first)
  return {
    log = KEYS[first], floors = KEYS[first + 1], meta = KEYS[first + 2], acked = KEYS[first + 3],
    ready = KEYS[first + 4], lease = KEYS[first + 5], deadlines = KEYS[first + 6], attempts = KEYS[first + 7],
    busy = KEYS[first + 8], blocked = KEYS[first + 9], dead = KEYS[first + 10], why = KEYS[first + 11],
    trim = KEYS[first + 12],
  }
end
-- A failed delivery: offered again after delayMs, or (out of attempts) left for its dead-letter copy.
-- At-most-once never offers a message twice: a failed delivery there counts as done.
local function failed(S, offset, key, now, delayMs, maxAttempts, reason)
  if redis.call('HGET', S.meta, 'delivery') == 'at-most-once' then
    settle(S, offset, key, now, 'acked')
    return 'done'
  end
  local attempts = tonumber(redis.call('HGET', S.attempts, s(offset)) or '0')
  if attempts >= maxAttempts then
    redis.call('ZADD', S.dead, 0, s(offset))
    redis.call('HSET', S.why, s(offset), reason)
    return 'dead'
  end
  redis.call('ZADD', S.ready, now + delayMs, rm(offset))
  if delayMs <= 0 then wakeNeeded = true end
  return 'again'
end
local function checkGen(S, gen)
  return redis.call('HGET', S.meta, 'gen') == gen
end
`

/** The keys a subscription script takes, in order (see `subKeys` in the prelude). */
export const subscriptionKeyCount = 13

/**
 * The dedup table of a partition, and appending to it.
 *
 * Dedup entries (a message id, a producer sequence, a transaction) are
 * "offset|storedAt" in two hashes used in turns (P[2] and P[3]), each current
 * for `span` ms: when the current one is older than that, the other (older
 * still) is dropped whole and takes its place. An entry counts only within
 * its own window, checked against storedAt, so no entry needs expiring one by
 * one, and the table holds at most two spans of entries.
 *
 * appendRecords appends `count` records given in ARGV from `base`, 9 values
 * each (see appendScript), to the partition whose keys are P = {log, ids,
 * ids2, meta}; false when the topic's generation is not `gen` (deleted).
 */
const appendPrelude = `
local function dedupTables(P, now, span)
  local pmeta = P[4]
  local since = tonumber(redis.call('HGET', pmeta, 'idsSince') or '-1')
  local current = redis.call('HGET', pmeta, 'idsCurrent') or 'a'
  if since < 0 then
    redis.call('HSET', pmeta, 'idsSince', string.format('%d', now), 'idsCurrent', 'a')
    current = 'a'
  elseif now - since >= span then
    redis.call('UNLINK', (current == 'a') and P[3] or P[2])
    current = (current == 'a') and 'b' or 'a'
    redis.call('HSET', pmeta, 'idsSince', string.format('%d', now), 'idsCurrent', current)
  end
  if current == 'a' then return P[2], P[3] end
  return P[3], P[2]
end
-- The offsets of the names still within their windows: windowOf(name) says how long each counts.
local function dedupLookup(cur, old, names, now, windowOf)
  local seen = {}
  if #names == 0 then return seen end
  local a = redis.call('HMGET', cur, unpack(names))
  local b = redis.call('HMGET', old, unpack(names))
  for i, name in ipairs(names) do
    for _, v in ipairs({ a[i], b[i] }) do
      if v and not seen[name] then
        local o, t = string.match(v, '^([^|]+)|(%d+)$')
        if o and now - tonumber(t) < windowOf(name) then seen[name] = o end
      end
    end
  end
  return seen
end
local function appendRecords(P, gen, now, channel, partition, seqWindow, span, base, count)
  local log, pmeta = P[1], P[4]
  if redis.call('HGET', pmeta, 'gen') ~= gen then return false end
  local cur, old = dedupTables(P, now, span)
  local names = {}
  local idWindow = 0
  for r = 0, count - 1 do
    local b = base + r * 9
    if ARGV[b] ~= '' then
      names[#names + 1] = ARGV[b]
      idWindow = tonumber(ARGV[b + 1])
    end
    if ARGV[b + 2] ~= '' then names[#names + 1] = ARGV[b + 2] end
  end
  local seen = dedupLookup(cur, old, names, now, function(name)
    if string.sub(name, 1, 2) == 'i:' then return idWindow end
    return seqWindow
  end)
  local out = {}
  local fields = {}
  local added = 0
  local nowText = string.format('%d', now)
  for r = 0, count - 1 do
    local b = base + r * 9
    local idKey, seqKey = ARGV[b], ARGV[b + 2]
    local first = (idKey ~= '' and seen[idKey]) or (seqKey ~= '' and seen[seqKey]) or false
    if first then
      out[#out + 1] = first
      out[#out + 1] = 1
    else
      local id
      local key = ARGV[b + 4]
      if string.sub(key, 1, 1) == '+' then
        id = redis.call('XADD', log, '0-*', 'i', ARGV[b + 3], 'k', string.sub(key, 2), 'h', ARGV[b + 5],
          'f', ARGV[b + 6], 'd', ARGV[b + 7], 't', nowText, 'a', ARGV[b + 8])
      else
        id = redis.call('XADD', log, '0-*', 'i', ARGV[b + 3], 'h', ARGV[b + 5],
          'f', ARGV[b + 6], 'd', ARGV[b + 7], 't', nowText, 'a', ARGV[b + 8])
      end
      local o = string.format('%d', tonumber(string.sub(id, 3)) - 1)
      local entry = o .. '|' .. nowText
      -- A repeat later in the same append is the same message.
      if idKey ~= '' then
        seen[idKey] = o
        fields[#fields + 1] = idKey
        fields[#fields + 1] = entry
      end
      if seqKey ~= '' then
        seen[seqKey] = o
        fields[#fields + 1] = seqKey
        fields[#fields + 1] = entry
      end
      out[#out + 1] = o
      out[#out + 1] = 0
      added = added + 1
    end
  end
  if #fields > 0 then redis.call('HSET', cur, unpack(fields)) end
  if added > 0 then
    redis.call('HINCRBY', pmeta, 'published', added)
    redis.call('PUBLISH', channel, partition)
  end
  return out
end
`

/**
 * Appends records to one partition, each unless it repeats a message id or a
 * producer sequence seen within its window (then the first one's offset).
 * KEYS: log, ids, ids2, partitionMeta. ARGV: gen, now, channel, partition,
 * count, seqWindowMs, spanMs, then per record: idKey ('' none),
 * idWindowMs, seqKey ('' none), id, key ('-' none, '+<key>'), headers,
 * format, payload, deliverAt. Answers offset and duplicate (0/1) per
 * record, or {'gone'}.
 */
export const appendScript = `${appendPrelude}
local out = appendRecords({ KEYS[1], KEYS[2], KEYS[3], KEYS[4] }, ARGV[1], tonumber(ARGV[2]), ARGV[3], ARGV[4],
  tonumber(ARGV[6]), tonumber(ARGV[7]), 8, tonumber(ARGV[5]))
if out == false then return {'gone'} end
return out
`

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
