-- polewatch_dispatch, incidents.lua: one part of the library, concatenated in order by
-- dispatcher/library.py (see common.lua). Uses common.lua.

-- ---------------------------------------------------------------------------------------
-- incidents: load, events, transitions

local function load_incident(id)
  if not id or id == '' then return nil end
  local h = redis.call('HMGET', key('incident', id), unpack(INCIDENT_FIELDS))
  if not h[1] then return nil end
  local inc = {
    id = h[1], state = h[2], priority = tonumber(h[3]), type = h[4], group = h[5],
    lon = tonumber(h[6]), lat = tonumber(h[7]), lon_s = h[6], lat_s = h[7], grid = h[8] or '', units = split(h[9]),
    wanted = tonumber(h[10]) or 1, capability = h[11] or '', reports = tonumber(h[12]) or 1,
    pole = nonempty(h[13]), district = nonempty(h[14]), text = nonempty(h[15]),
    alarm_ts = tonumber(h[16]), last_ts = tonumber(h[17]) or tonumber(h[16]) or 0,
    first_alarm = nonempty(h[18]),
  }
  -- Fields left out when they hold their default (see create): group = type, last_ts = alarm_ts.
  if not inc.group then inc.group = inc.type end
  return inc
end

-- Write fields (a flat name, value list) of the incident's hash. An incident being created
-- keeps them (inc.fields, name -> value: a field set twice is written once) until its first
-- decision is made: create() writes it all at once.
local function hset(inc, f)
  local pending = inc.fields
  if pending then
    for i = 1, #f, 2 do pending[f[i]] = f[i + 1] end
  else
    redis.call('HSET', key('incident', inc.id), unpack(f))
  end
end

local function save_units(inc)
  hset(inc, {'units', table.concat(inc.units, ',')})
end

-- An incident's alarms. Its list (incident_alarms) is written when a second alarm joins it:
-- until then its first_alarm field is the whole list (one key less per new incident).
local function alarms_of(inc)
  local list = redis.call('LRANGE', key('incident_alarms', inc.id), 0, -1)
  if #list == 0 and inc.first_alarm then list = {inc.first_alarm} end
  return list
end

local function add_alarm(inc, a)
  local k = key('incident_alarms', inc.id)
  if redis.call('RPUSH', k, a) == 1 and inc.first_alarm and inc.first_alarm ~= a then
    redis.call('LPUSH', k, inc.first_alarm)
  end
end

-- An alarm's record (key 'alarm') is '<incident id>\n<the alarm (MessagePack)>': the
-- idempotency record and the body in one key (polewatch/records.py reads it). A record
-- written before holds the id alone, its body in the key 'alarm_body'.
local function alarm_body(a)
  local v = redis.call('GET', key('alarm', a))
  local cut = v and string.find(v, '\n', 1, true)
  if cut then return string.sub(v, cut + 1) end
  return redis.call('GET', key('alarm_body', a))
end

-- The alarm now belongs to incident `id` (merge, split); an expired record stays expired.
local function repoint(a, id)
  local k = key('alarm', a)
  local v = redis.call('GET', k)
  if not v then return end
  local cut = string.find(v, '\n', 1, true)
  redis.call('SET', k, cut and (id .. string.sub(v, cut)) or id, 'KEEPTTL')
end

-- States after which the archiver archives an incident and gives its keys a retention TTL.
local TERMINAL = {closed = true, cancelled = true, merged = true}

-- An archived incident amended (an event after its end) or reopened keeps its keys until the
-- archiver has it again, however long the archiver is down: retention must never expire it.
local function keep(inc)
  for _, a in ipairs(alarms_of(inc)) do
    redis.call('PERSIST', key('alarm', a))
    redis.call('PERSIST', key('alarm_body', a))  -- (a record written before issue 15)
  end
  redis.call('PERSIST', key('incident', inc.id))
  redis.call('PERSIST', key('incident_timeline', inc.id))
  redis.call('PERSIST', key('incident_alarms', inc.id))
  redis.call('PERSIST', key('incident_tried', inc.id))
end

-- Append an IncidentEvent to the audit stream now, and to the incident's timeline when the
-- entry is done (one RPUSH per incident and entry); the incident is announced with the call's
-- others when the call ends.
local function event(inc, name, ev)
  if TERMINAL[inc.state] and name ~= inc.state then keep(inc) end
  ev = ev or {}
  ev.k, ev.v, ev.incident, ev.event, ev.ts = 'incident', 1, inc.id, name, NOW
  ev.actor = ev.actor or 'dispatcher'
  local packed = cmsgpack.pack(ev)
  redis.call('XADD', K.AUDIT, 'MAXLEN', '~', S.audit_maxlen, '*', 'm', packed)
  -- A flood of merged reports stays in the audit stream but would bloat the detail page.
  if name ~= 'report' or (ev.reports or 0) <= 100 then
    local list = TIMELINE[inc.id]
    if not list then list = {}; TIMELINE[inc.id] = list end
    list[#list + 1] = packed
  end
  TOUCHED[inc.id] = true
end

local function flush()
  for id, list in pairs(TIMELINE) do
    redis.call('RPUSH', key('incident_timeline', id), unpack(list))
  end
  for id in pairs(TOUCHED) do announce(K.INCIDENT_NOTIFY, id) end
  TIMELINE, TOUCHED = {}, {}
end

-- Set the state (and its first-entered time), with any `extra` fields in the same write.
-- An incident created in this call (`fresh`) has no t_<state> yet: one HSET does it all.
local function transition(inc, state, ev, extra)
  local f = extra or {}
  f[#f + 1] = 'state'; f[#f + 1] = state
  if inc.fresh then f[#f + 1] = 't_' .. state; f[#f + 1] = now_s() end
  hset(inc, f)
  if not inc.fresh then redis.call('HSETNX', key('incident', inc.id), 't_' .. state, now_s()) end
  if TERMINAL[inc.state] then keep(inc) end  -- reopened
  inc.state = state
  event(inc, state, ev)
end

-- Forward-only progress (a second unit arriving on scene does not move the incident back).
local function advance(inc, state, ev)
  if ORDER[state] > (ORDER[inc.state] or 0) then transition(inc, state, ev)
  else event(inc, state, ev) end
end

-- An incident leaving the open states: no longer mergeable, waiting or listed as open.
local function close_out(inc)
  open_remove(inc.id)
  redis.call('ZREM', K.ESCALATED, inc.id)
  redis.call('ZREM', key('merge_area', inc.group), inc.id)
end
