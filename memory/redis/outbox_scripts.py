"""The Lua scripts that make erase and forget final for entries still in the recall outbox (``memory.redis.outbox``).

All their keys share the ``{recall}`` hash tag (``memory.redis.keys``), so each script is legal on a Redis Cluster.
"""

from __future__ import annotations

# KEYS: stream, pending hash, epochs hash. ARGV: (agent, agent digest, entry JSON) triples. Stores each entry with
# its agent's current erase epoch and counts it as pending.
PUT = """
for i = 1, #ARGV, 3 do
  local epoch = redis.call('HGET', KEYS[3], ARGV[i + 1]) or '0'
  redis.call('XADD', KEYS[1], '*', 'a', ARGV[i], 'e', ARGV[i + 2], 'g', epoch)
  redis.call('HINCRBY', KEYS[2], ARGV[i], 1)
end
return #ARGV / 3
"""

# KEYS: stream, pending hash, dead-letter stream, epochs hash. ARGV: group, agent, agent digest.
# Moves the agent's epoch on, then acknowledges and deletes every entry of the agent in the stream (claimed by an
# indexer or not) and in the dead letters, and drops its pending count: all at once, so no entry of the agent
# stored before the erase is left anywhere, and every one an indexer still holds is stale. Returns the removed
# entries as stream id, entry JSON pairs.
ERASE = """
redis.call('HINCRBY', KEYS[4], ARGV[3], 1)
local removed = {}
for _, key in ipairs({KEYS[1], KEYS[3]}) do
  local start = '-'
  while true do
    local rows = redis.call('XRANGE', key, start, '+', 'COUNT', 500)
    for _, row in ipairs(rows) do
      local fields, agent, entry = row[2], nil, ''
      for i = 1, #fields, 2 do
        if fields[i] == 'a' then agent = fields[i + 1] elseif fields[i] == 'e' then entry = fields[i + 1] end
      end
      if agent == ARGV[2] then
        if key == KEYS[1] then redis.pcall('XACK', key, ARGV[1], row[1]) end
        if redis.call('XDEL', key, row[1]) == 1 then
          removed[#removed + 1] = row[1]
          removed[#removed + 1] = entry
        end
      end
    end
    if #rows < 500 then break end
    start = '(' .. rows[#rows][1]
  end
end
redis.call('HDEL', KEYS[2], ARGV[2])
return removed
"""

# KEYS: stream, pending hash, dead-letter stream, forgotten set. ARGV: group, agent, now, oldest kept, number of
# point ids p, the p point ids, number of stream ids n, the n stream ids, then dead-letter ids. Records the point
# ids as forgotten (dropping records older than kept) and removes the entries, lowering the pending count.
FORGET = """
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', '(' .. ARGV[4])
local p = tonumber(ARGV[5])
for i = 6, 5 + p do redis.call('ZADD', KEYS[4], ARGV[3], ARGV[i]) end
local at = 6 + p
local n = tonumber(ARGV[at])
local removed = 0
for i = at + 1, at + n do
  redis.pcall('XACK', KEYS[1], ARGV[1], ARGV[i])
  if redis.call('XDEL', KEYS[1], ARGV[i]) == 1 then
    removed = removed + 1
    if redis.call('HINCRBY', KEYS[2], ARGV[2], -1) <= 0 then redis.call('HDEL', KEYS[2], ARGV[2]) end
  end
end
for i = at + n + 1, #ARGV do removed = removed + redis.call('XDEL', KEYS[3], ARGV[i]) end
return removed
"""

# KEYS: one agent's latest-message hash. ARGV: point ids. Drops the channels whose latest message is one of them.
UNSET_LATEST = """
local flat = redis.call('HGETALL', KEYS[1])
local gone = {}
for i = 1, #ARGV do gone[ARGV[i]] = true end
local removed = 0
for i = 1, #flat, 2 do
  local id = string.match(flat[i + 1], '|(.*)$')
  if id and gone[id] then removed = removed + redis.call('HDEL', KEYS[1], flat[i]) end
end
return removed
"""
