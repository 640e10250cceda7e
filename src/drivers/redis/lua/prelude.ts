/**
 * The Lua prelude every Redis script shares, and the layout it reads. The
 * scripts (append.ts, subscription.ts, transaction.ts) are everything that must
 * be atomic on the server. Each runs on the keys of ONE partition (they share a hash tag, so
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
export const prelude = `
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
