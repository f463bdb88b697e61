"""The Lua scripts behind core memory (``memory.redis.core``): each write checks, writes, versions, audits at once.

Every script gets the same six keys: 1 blocks hash, 2 limits hash, 3 meta hash, 4 versions hash, 5 version
counter, 6 audit stream (all in the agent's hash slot). Scripts that write end their ARGV with the same tail:
now (RFC 3339), kind, cause, versions kept, audit max entries, detail JSON ('' for none); ``record`` reads it.

Every script also gets KEYS[7], the agent's lock. EDIT and ENSURE end their ARGV with the turn's fencing token
('' = unfenced, ``memory.redis.fencing``) and write nothing when the lock no longer holds it.
"""

from __future__ import annotations

from memory.redis.fencing import guard_lua

_FENCED = guard_lua("KEYS[7]", "ARGV[#ARGV]")

_HELPERS = r"""
local function plain_replace(text, old, new)
  local parts, pos, found = {}, 1, 0
  while true do
    local i, j = string.find(text, old, pos, true)
    if not i then break end
    parts[#parts + 1] = string.sub(text, pos, i - 1)
    parts[#parts + 1] = new
    pos = j + 1
    found = found + 1
  end
  if found == 0 then return text, 0 end
  parts[#parts + 1] = string.sub(text, pos)
  return table.concat(parts), found
end

local function split_lines(text)
  local lines, pos = {}, 1
  while true do
    local i = string.find(text, '\n', pos, true)
    if not i then
      lines[#lines + 1] = string.sub(text, pos)
      return lines
    end
    lines[#lines + 1] = string.sub(text, pos, i - 1)
    pos = i + 1
  end
end

local function is_private(line, mark)
  return string.sub(line, 1, #mark) == mark
end

local function unmark(line, mark)
  if not is_private(line, mark) then return line end
  local rest = string.sub(line, #mark + 1)
  if string.sub(rest, 1, 1) == ' ' then rest = string.sub(rest, 2) end
  return rest
end

-- Replace only inside runs of public lines: text the model saw in a public context never reaches a private line.
local function replace_public(text, old, new, mark)
  local out, run, found = {}, {}, 0
  local function flush()
    if #run > 0 then
      local replaced, n = plain_replace(table.concat(run, '\n'), old, new)
      found = found + n
      out[#out + 1] = replaced
      run = {}
    end
  end
  for _, line in ipairs(split_lines(text)) do
    if is_private(line, mark) then
      flush()
      out[#out + 1] = line
    else
      run[#run + 1] = line
    end
  end
  flush()
  return table.concat(out, '\n'), found
end

-- Mark private every non-empty line of ``after`` that is not a line of ``before`` (what an edit changed).
local function mark_changed(before, after, mark)
  local old = {}
  for _, line in ipairs(split_lines(before)) do old[line] = true end
  local lines = split_lines(after)
  for i, line in ipairs(lines) do
    if not old[line] and line ~= '' and not is_private(line, mark) then lines[i] = mark .. ' ' .. line end
  end
  return table.concat(lines, '\n')
end

-- Remove the lines equal to one of ``targets`` (newline-separated): whole lines only.
local function drop_lines(text, targets)
  local wanted, kept, found = {}, {}, 0
  for _, line in ipairs(split_lines(targets)) do wanted[line] = true end
  for _, line in ipairs(split_lines(text)) do
    if wanted[line] then found = found + 1 else kept[#kept + 1] = line end
  end
  return table.concat(kept, '\n'), found
end

local function set_mark(text, base, private, mark)
  local lines, found = split_lines(text), 0
  for i, line in ipairs(lines) do
    if unmark(line, mark) == base then
      found = found + 1
      if private then lines[i] = mark .. ' ' .. base else lines[i] = base end
    end
  end
  return table.concat(lines, '\n'), found
end

-- Store the whole core memory as a new version, prune the oldest beyond the number kept, and add the audit
-- entry when ``audit`` is true. Returns the new version number.
local function record(tail, label, audit)
  local now, kind, cause = ARGV[tail], ARGV[tail + 1], ARGV[tail + 2]
  local keep, detail = tonumber(ARGV[tail + 3]), ARGV[tail + 5]
  local version = redis.call('INCR', KEYS[5])
  local flat = redis.call('HGETALL', KEYS[1])
  local blocks = {}
  for i = 1, #flat, 2 do blocks[flat[i]] = flat[i + 1] end
  local state = {at = now, kind = kind, cause = cause, blocks = blocks}
  if label ~= '' then state.label = label end
  redis.call('HSET', KEYS[4], tostring(version), cjson.encode(state))
  local excess = redis.call('HLEN', KEYS[4]) - keep
  if excess > 0 then
    local numbers = {}
    for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do numbers[#numbers + 1] = tonumber(field) end
    table.sort(numbers)
    for i = 1, excess do redis.call('HDEL', KEYS[4], tostring(numbers[i])) end
  end
  redis.call('HSET', KEYS[3], 'modified', now)
  if audit then
    local fields = {'at', now, 'kind', kind, 'cause', cause, 'version', tostring(version)}
    if label ~= '' then
      fields[#fields + 1] = 'label'
      fields[#fields + 1] = label
    end
    if detail ~= '' then
      fields[#fields + 1] = 'detail'
      fields[#fields + 1] = detail
    end
    redis.call('XADD', KEYS[6], 'MAXLEN', '~', ARGV[tail + 4], '*', unpack(fields))
  end
  return version
end
"""

# ARGV: op (append | replace | replace_public | mark | drop_lines; a replace op may end in _mark: then the lines it
# changes are marked private), label, first, second, default limit, private mark, tail, fencing token. mark: first is
# the line without its mark, second '1' (mark private) or '0' (unmark). drop_lines: first is the exact lines to
# remove, newline-separated.
# Returns {"ok", new value, limit, version ('0': nothing changed)} | {"missing", labels...} | {"notfound"}
#       | {"toolong", chars, limit}.
EDIT = (
    _HELPERS
    + _FENCED
    + r"""
local op, label = ARGV[1], ARGV[2]
local current = redis.call('HGET', KEYS[1], label)
if not current then
  local labels = redis.call('HKEYS', KEYS[1])
  table.insert(labels, 1, 'missing')
  return labels
end
local limit = tonumber(redis.call('HGET', KEYS[2], label) or '') or tonumber(ARGV[5])
local new, found
if op == 'append' then
  if current == '' then new = ARGV[3] else new = current .. '\n' .. ARGV[3] end
  found = 1
elseif op == 'replace' or op == 'replace_mark' then
  new, found = plain_replace(current, ARGV[3], ARGV[4])
elseif op == 'replace_public' or op == 'replace_public_mark' then
  new, found = replace_public(current, ARGV[3], ARGV[4], ARGV[6])
elseif op == 'drop_lines' then
  new, found = drop_lines(current, ARGV[3])
else
  new, found = set_mark(current, ARGV[3], ARGV[4] == '1', ARGV[6])
end
if found == 0 then return {'notfound'} end
if string.sub(op, -5) == '_mark' then new = mark_changed(current, new, ARGV[6]) end
if new == current then return {'ok', new, tostring(limit), '0'} end
-- characters, not bytes: count every byte that does not continue a UTF-8 sequence
local chars = select(2, string.gsub(new, '[^\128-\191]', ''))
if chars > limit then return {'toolong', tostring(chars), tostring(limit)} end
redis.call('HSET', KEYS[1], label, new)
local version = record(7, label, true)
return {'ok', new, tostring(limit), tostring(version)}
"""
)

# ARGV: number of blocks n, then n (label, value) pairs, then the tail, then the fencing token. Creates the missing
# blocks; a new version
# (and audit entry) only when one was created. Returns how many were created.
ENSURE = (
    _HELPERS
    + _FENCED
    + r"""
local n = tonumber(ARGV[1])
local created = 0
for i = 0, n - 1 do
  created = created + redis.call('HSETNX', KEYS[1], ARGV[2 + 2 * i], ARGV[3 + 2 * i])
end
local tail = 2 + 2 * n
redis.call('HSETNX', KEYS[3], 'created', ARGV[tail])
redis.call('HSETNX', KEYS[3], 'modified', ARGV[tail])
if created > 0 then record(tail, '', true) end
return created
"""
)

# ARGV: version, tail. Restores the blocks of that version as a new version.
# Returns {"ok", new version} | {"missing", oldest kept, newest kept} (0, 0 when none is kept).
ROLLBACK = (
    _HELPERS
    + r"""
local raw = redis.call('HGET', KEYS[4], ARGV[1])
if not raw then
  local oldest, newest = 0, 0
  for _, field in ipairs(redis.call('HKEYS', KEYS[4])) do
    local number = tonumber(field)
    if oldest == 0 or number < oldest then oldest = number end
    if number > newest then newest = number end
  end
  return {'missing', tostring(oldest), tostring(newest)}
end
local state = cjson.decode(raw)
redis.call('DEL', KEYS[1])
for label, value in pairs(state.blocks) do redis.call('HSET', KEYS[1], label, value) end
redis.call('HSETNX', KEYS[3], 'created', ARGV[2])
return {'ok', tostring(record(2, '', true))}
"""
)

# ARGV: tail. Removes blocks, limits and metadata, and records the empty core as a version (no audit entry: the
# reset of all stores is audited once by its caller). Returns {blocks removed, version}.
RESET = (
    _HELPERS
    + r"""
local removed = redis.call('HLEN', KEYS[1])
redis.call('DEL', KEYS[1], KEYS[2])
local version = record(1, '', false)
redis.call('DEL', KEYS[3])
return {removed, version}
"""
)

# ARGV: private mark, then (label, line) pairs, lines without their mark. Removes those lines from every kept
# version (forgetting must not leave them to a rollback). Returns how many versions changed.
SCRUB = (
    _HELPERS
    + r"""
local mark = ARGV[1]
local targets = {}
for i = 2, #ARGV, 2 do targets[ARGV[i] .. '\n' .. ARGV[i + 1]] = true end
local changed = 0
local flat = redis.call('HGETALL', KEYS[4])
for i = 1, #flat, 2 do
  local state = cjson.decode(flat[i + 1])
  local touched = false
  for label, value in pairs(state.blocks) do
    local kept, dropped = {}, false
    for _, line in ipairs(split_lines(value)) do
      if targets[label .. '\n' .. unmark(line, mark)] then dropped = true else kept[#kept + 1] = line end
    end
    if dropped then
      state.blocks[label] = table.concat(kept, '\n')
      touched = true
    end
  end
  if touched then
    redis.call('HSET', KEYS[4], flat[i], cjson.encode(state))
    changed = changed + 1
  end
end
return changed
"""
)
