-- polewatch_dispatch, entry.lua: one part of the library, concatenated in order by
-- dispatcher/library.py (see common.lua). Uses every other part; registers the functions.

-- ---------------------------------------------------------------------------------------
-- entry points

local STREAMS = {a = 'ALARMS', p = 'PATROL_EVENTS', c = 'COMMANDS'}

-- Same fields as polewatch.deadletter.record (the convention every consumer follows).
local function dead_letter(stream, eid, raw, reason)
  redis.call('XADD', K.DEADLETTER, 'MAXLEN', '~', C.deadletter_maxlen, '*',
             'stream', stream, 'id', eid, 'reason', string.sub(reason, 1, 1000),
             'consumer', C.consumer, 'ts', now_s(), 'raw:m', raw)
  stat('rejected')
end

-- An alarm as library.digest made it: its fields, numbers also formatted as the arguments they
-- become (lon, lat %.17g; ts %.6f), absent ones as ''.
local function digested(s)
  local f = cmsgpack.unpack(s)
  return {id = f[1], type = f[2], lon = f[3], lat = f[4], ts = f[5], lon_s = f[6],
          lat_s = f[7], ts_s = f[8], pole = f[9], district = f[10], grid = f[11], text = f[12]}
end

local function handle(code, raw)
  local m
  if code == 'a' and FLAT then m = digested(FLAT) else m = cmsgpack.unpack(raw) end
  if code == 'a' then on_alarm(m, raw)
  elseif code == 'p' then
    stat('patrol')
    if m.k == 'pos' then on_position(m)
    elseif m.k == 'duty' then on_duty(m)
    else on_status(m) end
  else
    stat('commands')
    on_command(m)
  end
  serve_escalated(C.escalated_batch)
end

-- Stream ids as numbers, to compare them ('<ms>-<seq>'; ms fits a double exactly).
local function before(a, b)
  -- Nearly always: the same length and '-' at the same place, so ms and seq have equal lengths
  -- and the text order is the numeric one (Redis writes no leading zeros). Two string.match
  -- and four tonumber per entry were 3% of an alarm's instructions in the dispatcher's calls.
  if #a == #b and string.find(a, '-', 1, true) == string.find(b, '-', 1, true) then
    return a < b
  end
  local ams, aseq = string.match(a, '^(%d+)-?(%d*)$')
  local bms, bseq = string.match(b, '^(%d+)-?(%d*)$')
  if not ams or not bms then return a < b end  -- not an id: XACK below says so
  ams, bms = tonumber(ams), tonumber(bms)
  if ams ~= bms then return ams < bms end
  return (tonumber(aseq) or 0) < (tonumber(bseq) or 0)
end

-- Acknowledge the batch's entries, two calls per stream; the set of those that were still
-- pending. XPENDING over the batch's range lists the entries still pending in the group
-- (whoever holds them): one acknowledged meanwhile by a replica that claimed it is not
-- there, and is skipped. (XCLAIM ... JUSTID to ourselves answered the same, but is written
-- to the AOF once per entry, as a command of about 150 bytes.)
local function acknowledge(args)
  local ids = {}
  for i = 2, #args, 3 do
    local code, eid = args[i], args[i + 1]
    if eid ~= '' then
      ids[code] = ids[code] or {}
      table.insert(ids[code], eid)
    end
  end
  local pending = {}
  for code, list in pairs(ids) do
    local stream = K[STREAMS[code]]
    local lo, hi = list[1], list[1]
    for i = 2, #list do
      if before(list[i], lo) then lo = list[i] elseif before(hi, list[i]) then hi = list[i] end
    end
    local held = {}
    pending[code] = held
    -- (the count: every entry of the range, whoever holds it)
    for _, e in ipairs(redis.call('XPENDING', stream, C.group, lo, hi, 1000000000)) do
      held[e[1]] = true
    end
    redis.call('XACK', stream, C.group, unpack(list))
  end
  return pending
end

local function batch(keys, args)
  begin(args[1])
  -- A call makes several kilobytes of garbage per entry while the live heap stays small: with
  -- Lua's default pause (a cycle each time the heap doubles) the collector marked the library
  -- many times a call. 400: a cycle when the heap is 4x the live size (1.4% of the instructions
  -- of an alarm, callgrind). Not settable while the library loads, so set here.
  collectgarbage('setpause', 400)
  -- Someone flushed Redis: refuse the whole batch (nothing acknowledged) so the replica
  -- loads its setup again and retries, rather than dead-lettering good alarms.
  if redis.call('EXISTS', K.DISPATCH_TYPES) == 0 then
    return redis.error_reply('NOTYPES alarm-type table not loaded')
  end
  local pending = acknowledge(args)
  SEQ_WANT = math.max(1, (#args - 1) / 3)  -- at most one incident per entry
  for i = 2, #args, 3 do
    local code, eid, raw = args[i], args[i + 1], args[i + 2]
    if code == 'r' then
      RANK = cmsgpack.unpack(raw)  -- the road shortlist of the alarm that comes next
    elseif code ~= 'f' then  -- (an alarm's digest is read with the alarm)
      if code == 'a' and args[i + 3] == 'f' then FLAT = args[i + 5] end
      local stream = K[STREAMS[code]]
      if eid ~= '' and not pending[code][eid] then
        stat('skipped')  -- already done by the replica that claimed it
      else
        FREED = {}
        local ok, err = pcall(handle, code, raw)
        flush()  -- also after a failure: what was written stays consistent with the audit
        if not ok then
          local reason
          if type(err) == 'table' and err.reject then reason = err.reject
          else
            reason = 'dispatcher error: ' .. tostring(type(err) == 'table' and err.err or err)
          end
          dead_letter(stream, eid, raw, reason)
        end
      end
      RANK, FLAT = nil, nil
    end
  end
  return result()
end

local function tick(keys, args)
  begin(args[1])
  for i = 2, #args, 2 do RANKS[args[i]] = cmsgpack.unpack(args[i + 1]) end
  local due = redis.call('ZRANGEBYSCORE', K.ACK_DEADLINES, '-inf', NOW,
                         'LIMIT', 0, C.expire_batch)
  for _, member in ipairs(due) do
    redis.call('ZREM', K.ACK_DEADLINES, member)
    local id, u = string.match(member, '^(.*)|(.*)$')
    local inc = load_incident(id)
    if inc and OPEN[inc.state] and index_of(inc.units, u) then
      inc.rank = RANKS[id]
      redis.call('SADD', key('incident_tried', id), u)
      withdraw(inc, u, 'no acknowledgement within ' .. C.ack_timeout_s .. ' s')
      event(inc, 'timeout', {unit = u})
      missed(inc, u)
      fill(inc)
      stat('expired')
    end
  end
  for _, id in ipairs(redis.call('ZRANGE', K.ESCALATED, 0, C.escalated_batch - 1)) do
    local inc = load_incident(id)
    if inc and OPEN[inc.state] then
      inc.rank = RANKS[id]
      fill(inc)
    else
      redis.call('ZREM', K.ESCALATED, id)
    end
  end
  flush()
  return result()
end

redis.register_function{function_name = 'pw_route', callback = route, flags = {'no-writes'}}
redis.register_function{function_name = 'pw_nearest', callback = nearest, flags = {'no-writes'}}
redis.register_function('pw_batch', batch)
redis.register_function('pw_tick', tick)
redis.register_function('pw_version', function() return VERSION end)
