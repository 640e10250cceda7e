/** The append script and the dedup table it keeps (see prelude.ts for the layout). */

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
export const appendPrelude = `
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
      -- Fields at their defaults are left out (no headers, format 0, no delay): less to write and to keep.
      local add = { 'XADD', log, '0-*', 'i', ARGV[b + 3], 'd', ARGV[b + 7], 't', nowText }
      local key = ARGV[b + 4]
      if string.sub(key, 1, 1) == '+' then
        add[#add + 1] = 'k'
        add[#add + 1] = string.sub(key, 2)
      end
      if ARGV[b + 5] ~= '{}' then
        add[#add + 1] = 'h'
        add[#add + 1] = ARGV[b + 5]
      end
      if ARGV[b + 6] ~= '0' then
        add[#add + 1] = 'f'
        add[#add + 1] = ARGV[b + 6]
      end
      if ARGV[b + 8] ~= '0' then
        add[#add + 1] = 'a'
        add[#add + 1] = ARGV[b + 8]
      end
      local id = redis.call(unpack(add))
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
