/** The append script and the dedup table it keeps (see prelude.ts for the layout). */

/**
 * The dedup table of a partition, and appending to it.
 *
 * The table is two hashes used in turns (P[2] and P[3]), each current for
 * `span` ms: when the current one is older than that, the other (older
 * still) is dropped whole and takes its place, so no entry needs expiring one
 * by one, and the table holds at most two spans of entries. `span` is at
 * least every window an entry counts for, so an entry is kept at least as
 * long as it counts. Its fields:
 * - `i:<id>` (a message id given by the producer) and `tx:<id>` (a
 *   transaction): "offset|storedAt", counting only within their window,
 *   checked against storedAt;
 * - `p:<producer>:<n>`: the producer's sequences 64n to 64n + 63 stored in this
 *   partition, as ",seq:offset" pairs: one field for up to 64 messages, not
 *   one a message, as that is what every publish pays for. A sequence is never
 *   reused (a producer id is a fresh uuid), so these need no window of their
 *   own: they are kept for the span (at least producerWindowMs), at most two.
 *
 * appendRecords appends `count` records to the partition whose keys are
 * P = {log, ids, ids2, meta}, whose generation appendPlan has checked.
 * From ARGV[base]: the id dedup window in ms, then a MessagePack
 * array of 8 values a record (idKey or false, sequence field or false,
 * sequence, id, key or false, headers JSON or false, format, deliverAt; see
 * append-args.ts), then the `count` payloads.
 */
export const appendPrelude = `
-- sinceText and currentText: the partition meta's idsSince and idsCurrent, as read by the caller.
local function dedupTables(P, now, span, sinceText, currentText)
  local pmeta = P[4]
  local since = tonumber(sinceText or '-1')
  local current = currentText or 'a'
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
local function appendRecords(P, now, channel, partition, span, base, count)
  local log, pmeta = P[1], P[4]
  local state = redis.call('HMGET', pmeta, 'idsSince', 'idsCurrent')
  local cur, old = dedupTables(P, now, span, state[1], state[2])
  local idWindow = tonumber(ARGV[base])
  local m = cmsgpack.unpack(ARGV[base + 1])
  -- The fields to look up: ids, and each sequence field once.
  local names, asked = {}, {}
  for b = 1, count * 8, 8 do
    local idKey, seqField = m[b], m[b + 1]
    if idKey and not asked[idKey] then
      asked[idKey] = true
      names[#names + 1] = idKey
    end
    if seqField and not asked[seqField] then
      asked[seqField] = true
      names[#names + 1] = seqField
    end
  end
  local known = {}
  if #names > 0 then
    local a = redis.call('HMGET', cur, unpack(names))
    local b = redis.call('HMGET', old, unpack(names))
    for i, name in ipairs(names) do known[name] = { a[i], b[i] } end
  end
  -- What this append stores, by id and by sequence field and number: a repeat later in it is the same message.
  local idsHere, seqsHere = {}, {}
  -- The first offset of a message already stored, or false.
  local function firstOffset(idKey, seqField, seq)
    if idKey then
      if idsHere[idKey] then return idsHere[idKey] end
      for _, v in ipairs(known[idKey]) do
        local o, t = string.match(v or '', '^([^|]+)|(%d+)$')
        if o and now - tonumber(t) < idWindow then return tonumber(o) end
      end
    end
    if seqField then
      local here = seqsHere[seqField]
      if here and here[seq] then return here[seq] end
      local pair = ',' .. string.format('%d', seq) .. ':'
      for _, v in ipairs(known[seqField]) do
        local at = v and string.find(v, pair, 1, true)
        if at then return tonumber(string.match(v, '^(%d+)', at + #pair)) end
      end
    end
    return false
  end
  local out = {}
  local idFields = {}
  local grown = {}
  local added = 0
  local nowText = string.format('%d', now)
  for r = 0, count - 1 do
    local b = r * 8
    local idKey, seqField, seq = m[b + 1], m[b + 2], m[b + 3]
    local first = (idKey or seqField) and firstOffset(idKey, seqField, seq)
    if first then
      out[#out + 1] = first
      out[#out + 1] = 1
    else
      -- Fields at their defaults are left out (no key, no headers, format 0, no delay): less to write and to keep.
      local add = { 'XADD', log, '0-*', 'i', m[b + 4], 'd', ARGV[base + 2 + r], 't', nowText }
      local key, headers, format, deliverAt = m[b + 5], m[b + 6], m[b + 7], m[b + 8]
      if key then
        add[#add + 1] = 'k'
        add[#add + 1] = key
      end
      if headers then
        add[#add + 1] = 'h'
        add[#add + 1] = headers
      end
      if format ~= 0 then
        add[#add + 1] = 'f'
        add[#add + 1] = string.format('%d', format)
      end
      if deliverAt ~= 0 then
        add[#add + 1] = 'a'
        add[#add + 1] = string.format('%d', deliverAt)
      end
      local id = redis.call(unpack(add))
      local o = tonumber(string.sub(id, 3)) - 1
      if idKey then
        idsHere[idKey] = o
        idFields[#idFields + 1] = idKey
        idFields[#idFields + 1] = string.format('%d', o) .. '|' .. nowText
      end
      if seqField then
        local here = seqsHere[seqField]
        if not here then
          here = {}
          seqsHere[seqField] = here
          -- The field grows in the current table; what it held in the older one stays there.
          grown[seqField] = { known[seqField][1] or '' }
        end
        here[seq] = o
        local parts = grown[seqField]
        parts[#parts + 1] = string.format(',%d:%d', seq, o)
      end
      out[#out + 1] = o
      out[#out + 1] = 0
      added = added + 1
    end
  end
  for field, parts in pairs(grown) do
    idFields[#idFields + 1] = field
    idFields[#idFields + 1] = table.concat(parts)
  end
  if #idFields > 0 then redis.call('HSET', cur, unpack(idFields)) end
  if added > 0 then
    redis.call('HINCRBY', pmeta, 'published', added)
    redis.call('PUBLISH', channel, partition)
  end
  return out
end
-- The groups of records to append, one a partition, from KEYS[keyBase + 1] and ARGV[at] on (see appendScript),
-- and whether every partition is still its topic's: nothing is written unless all are.
local function appendPlan(keyBase, at, groups)
  local plan = {}
  for g = 1, groups do
    local k = keyBase + (g - 1) * 4
    local P = { KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4] }
    local count = tonumber(ARGV[at + 3])
    plan[g] = { P = P, gen = ARGV[at], channel = ARGV[at + 1], partition = ARGV[at + 2], count = count,
      span = tonumber(ARGV[at + 4]), base = at + 5 }
    at = at + 5 + 2 + count
  end
  for g = 1, groups do
    if redis.call('HGET', plan[g].P[4], 'gen') ~= plan[g].gen then return plan, g end
  end
  return plan, false
end
`

/**
 * Appends records to one or more partitions (of any topics; on a cluster,
 * one partition a call, as each is a slot of its own), each unless it
 * repeats a message id or a producer sequence seen within its window (then
 * the first one's offset). Nothing is written when a partition is not its
 * topic's any more (deleted). KEYS: log, ids, ids2, partitionMeta per group.
 * ARGV: now, groups, then per group: gen, channel, partition, count, spanMs,
 * then its records (appendArgs: idWindowMs, the pack, the payloads). Answers
 * offset and duplicate (0/1) per record, group after group, or
 * {'gone', group index}.
 */
export const appendScript = `${appendPrelude}
local now = tonumber(ARGV[1])
local plan, gone = appendPlan(0, 3, tonumber(ARGV[2]))
if gone then return { 'gone', gone - 1 } end
local out = {}
for _, p in ipairs(plan) do
  for _, v in ipairs(appendRecords(p.P, now, p.channel, p.partition, p.span, p.base, p.count)) do
    out[#out + 1] = v
  end
end
return out
`
