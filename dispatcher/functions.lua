#!lua name=polewatch_dispatch
--[[
polewatch dispatch library: every decision about incidents and units, made atomically inside
Redis. The Python dispatcher only reads the streams, validates and forwards; a batch is one
FCALL, so a dispatcher killed at any moment either did a whole batch (and acknowledged its
entries) or did nothing.

Loaded by dispatcher/library.py, which fills in {{VERSION}} and {{KEYS}} (key templates from
polewatch/keys.py, the one place key names are made).

Functions
  pw_batch   ARGV[1] = settings (MessagePack map, library.settings_arg), then triples
             <stream code a|p|c> <entry id or ''> <canonical wire message (MessagePack)>.
             The batch's entries are acknowledged first (XCLAIM JUSTID + XACK per stream);
             one no longer pending (a replica that claimed it did the work) is skipped; ''
             means "not from a stream" (benchmarks, tools). A rejected entry is dead-lettered
             here with the reason. Fails with NOTYPES, acknowledging nothing, when the
             alarm-type table is missing (Redis was flushed). Returns the STAT_NAMES counters.
  pw_tick    ARGV[1] = settings. Expires unacknowledged dispatches (re-dispatch to the next
             nearest) and retries escalated incidents. Returns the counters.
  pw_version returns the library version.

Every call works in one dispatch zone (polewatch/zones.py): the settings name the zone's key
prefix, and every key the call touches is the zone's (one hash tag, so one Redis Cluster shard).
Callers pass the zone's alarm stream as KEYS[1] so a cluster client routes the call to its
shard; the other keys are built here from the templates.
]]

local VERSION = '{{VERSION}}'
-- Key templates: zoned ones are the part after the zone prefix, global ones are whole names.
local ZONED = {{ZONED}}
local GLOBAL = {{GLOBAL}}
local K             -- the keys of the current call's zone (cached per prefix in K_OF)
local K_OF = {}

local C             -- settings of the current call
local NOW = 0       -- server time (seconds, float), refreshed by clock()
local STATS         -- counters of the current call
local TYPES         -- alarm-type parameters read during the current call
local FREED         -- units freed during the current entry (offered to escalated incidents)
local TIMELINE      -- incident id -> packed events of the current entry, pushed by flush()
local TOUCHED       -- incidents to announce once at the end of the current entry

local STAT_NAMES = {'alarms', 'duplicates', 'incidents', 'merged', 'dispatched', 'escalated',
                    'rejected', 'skipped', 'patrol', 'commands', 'expired'}

local OPEN = {new = true, dispatched = true, acknowledged = true, en_route = true,
              on_scene = true, escalated = true}
-- Progress of an incident; a unit's report only moves the incident forward.
local ORDER = {new = 0, escalated = 0, dispatched = 1, acknowledged = 2, en_route = 3,
               on_scene = 4, resolved = 5, closed = 6}

local INCIDENT_FIELDS = {'id', 'state', 'priority', 'type', 'group', 'lon', 'lat', 'grid',
                         'units', 'wanted', 'capability', 'reports', 'pole', 'district', 'text',
                         'alarm_ts', 'last_ts'}

-- ---------------------------------------------------------------------------------------
-- small helpers

local NOW_S         -- NOW as a decimal string (microseconds), made when first needed

local function clock()
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) + tonumber(t[2]) / 1e6
  NOW_S = nil
  return NOW
end

local function now_s()
  if not NOW_S then NOW_S = string.format('%.6f', NOW) end
  return NOW_S
end

-- Keys made from ids are {head, tail} pairs (see library.py): concatenation is several times
-- cheaper than string.format, and keys are made ~20 times per alarm.
local function key(name, id)
  local t = K[name]
  return t[1] .. id .. t[2]
end

local function ts(x) return string.format('%.6f', x) end
-- The value, or nil for the empty strings and missing fields Redis hands back.
local function nonempty(s) if s == nil or s == false or s == '' then return nil end return s end

local function split(s)
  local out = {}
  if s then for x in string.gmatch(s, '[^,]+') do out[#out + 1] = x end end
  return out
end

local function index_of(list, v)
  for i = 1, #list do if list[i] == v then return i end end
  return nil
end

local function stat(name, n) STATS[name] = STATS[name] + (n or 1) end

-- A rejected entry: raised as a table so the batch loop can tell it from a bug.
local function reject(reason) error({reject = reason}, 0) end

local function haversine(lon1, lat1, lon2, lat2)
  local r = math.pi / 180
  local dlat, dlon = (lat2 - lat1) * r, (lon2 - lon1) * r
  local a = math.sin(dlat / 2) ^ 2 + math.cos(lat1 * r) * math.cos(lat2 * r) * math.sin(dlon / 2) ^ 2
  return 2 * 6372797.560856 * math.asin(math.min(1, math.sqrt(a)))
end

-- ---------------------------------------------------------------------------------------
-- incidents: load, events, transitions

local function load_incident(id)
  if not id or id == '' then return nil end
  local h = redis.call('HMGET', key('incident', id), unpack(INCIDENT_FIELDS))
  if not h[1] then return nil end
  return {
    id = h[1], state = h[2], priority = tonumber(h[3]), type = h[4], group = h[5],
    lon = tonumber(h[6]), lat = tonumber(h[7]), grid = h[8] or '', units = split(h[9]),
    wanted = tonumber(h[10]) or 1, capability = h[11] or '', reports = tonumber(h[12]) or 1,
    pole = nonempty(h[13]), district = nonempty(h[14]), text = nonempty(h[15]),
    alarm_ts = tonumber(h[16]), last_ts = tonumber(h[17]) or 0,
  }
end

local function save_units(inc)
  redis.call('HSET', key('incident', inc.id), 'units', table.concat(inc.units, ','))
end

-- Append an IncidentEvent to the audit stream now, and to the incident's timeline (and its
-- announcement) when the entry is done: one RPUSH and one PUBLISH per incident and entry.
local function event(inc, name, ev)
  ev = ev or {}
  ev.k, ev.v, ev.incident, ev.event, ev.ts = 'incident', 1, inc.id, name, NOW
  ev.actor = ev.actor or 'dispatcher'
  local packed = cmsgpack.pack(ev)
  redis.call('XADD', K.AUDIT, 'MAXLEN', '~', C.audit_maxlen, '*', 'm', packed)
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
  for id in pairs(TOUCHED) do redis.call('PUBLISH', K.INCIDENT_NOTIFY, id) end
  TIMELINE, TOUCHED = {}, {}
end

-- Set the state (and its first-entered time), with any `extra` fields in the same write.
-- An incident created in this call (`fresh`) has no t_<state> yet: one HSET does it all.
local function transition(inc, state, ev, extra)
  local k = key('incident', inc.id)
  local f = extra or {}
  f[#f + 1] = 'state'; f[#f + 1] = state
  if inc.fresh then f[#f + 1] = 't_' .. state; f[#f + 1] = now_s() end
  redis.call('HSET', k, unpack(f))
  if not inc.fresh then redis.call('HSETNX', k, 't_' .. state, now_s()) end
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
  redis.call('ZREM', K.INCIDENTS_OPEN, inc.id)
  redis.call('ZREM', K.ESCALATED, inc.id)
  redis.call('ZREM', key('merge_area', inc.group), inc.id)
end

-- ---------------------------------------------------------------------------------------
-- units: finding the nearest eligible one, assigning, releasing

-- The unit's grid if it may take the incident, else nil.
local function eligible(u, inc)
  -- (an incident created in this call has no tried units yet)
  if not inc.fresh and redis.call('SISMEMBER', key('incident_tried', inc.id), u) == 1 then
    return nil
  end
  local h = redis.call('HMGET', key('unit', u), 'seen', 'caps', 'grid', 'status', 'duty')
  if h[5] ~= 'on_duty' or h[4] ~= 'available' then return nil end
  local seen = tonumber(h[1])
  if not seen or NOW - seen > C.stale_after_s then return nil end
  if inc.capability ~= '' and
      not string.find(',' .. (h[2] or '') .. ',', ',' .. inc.capability .. ',', 1, true) then
    return nil
  end
  return h[3] or ''
end

-- Nearest eligible free unit within radius (in grid `want_grid` when given).
local function nearest_within(inc, radius, want_grid)
  local count = 8
  while true do
    local res = redis.call('GEOSEARCH', K.UNITS_FREE_GEO, 'FROMLONLAT', inc.lon, inc.lat,
                           'BYRADIUS', radius, 'm', 'ASC', 'COUNT', count, 'WITHDIST')
    for i = 1, #res do
      local g = eligible(res[i][1], inc)
      if g and (not want_grid or g == want_grid) then
        return res[i][1], tonumber(res[i][2]), g
      end
    end
    if #res < count then return nil end
    count = count * 4  -- all of the closest were ineligible: look further down the list
  end
end

-- Expanding-radius search; a unit of the incident's own grid wins when it is at most
-- grid_pref_m farther than the nearest.
local function find_unit(inc)
  -- Nobody free at all (an overloaded zone): one question, not one per radius. (A GEOSEARCH
  -- ... ANY over the largest radius would cost more than the searches it saves.)
  if redis.call('ZCARD', K.UNITS_FREE_GEO) == 0 then return nil end
  for _, r in ipairs(C.radii) do
    local u, d, g = nearest_within(inc, r)
    if u then
      if C.grid_pref_m > 0 and inc.grid ~= '' and g ~= inc.grid then
        local gu, gd = nearest_within(inc, d + C.grid_pref_m, inc.grid)
        if gu then return gu, gd end
      end
      return u, d
    end
  end
  return nil
end

local function notify_unit(u, msg)
  redis.call('XADD', key('unit_inbox', u), 'MAXLEN', '~', C.inbox_maxlen, '*', 'm',
             cmsgpack.pack(msg))
  redis.call('PUBLISH', K.UNIT_NOTIFY, u)
end

local function assign(inc, u, d, actor)
  redis.call('ZREM', K.UNITS_FREE_GEO, u)
  redis.call('HSET', key('unit', u), 'status', 'dispatched', 'incident', inc.id)
  inc.units[#inc.units + 1] = u
  local ack_by = NOW + C.ack_timeout_s
  notify_unit(u, {
    k = 'dispatch', v = 1, incident = inc.id, unit = u, priority = inc.priority,
    type = inc.type, lon = inc.lon, lat = inc.lat, ts = NOW, ack_by = ack_by,
    alarm_ts = inc.alarm_ts, pole = inc.pole, district = inc.district,
    grid = nonempty(inc.grid), text = inc.text, distance_m = d, reports = inc.reports,
  })
  redis.call('ZADD', K.ACK_DEADLINES, ack_by, inc.id .. '|' .. u)
  local ev = {unit = u, actor = actor, priority = inc.priority}
  if d then ev.detail = string.format('%.0f m', d) end
  -- The first unit (again, after a reassignment) puts the incident back to 'dispatched'.
  local units = {'units', table.concat(inc.units, ',')}
  if #inc.units == 1 and inc.state ~= 'dispatched' then transition(inc, 'dispatched', ev, units)
  else
    redis.call('HSET', key('incident', inc.id), unpack(units))
    event(inc, 'dispatched', ev)
  end
  stat('dispatched')
end

-- Give the incident units until it has as many as it wants; escalate when nobody is free.
local function fill(inc, actor)
  while #inc.units < inc.wanted do
    local u, d = find_unit(inc)
    if not u then break end
    assign(inc, u, d, actor)
  end
  if #inc.units >= inc.wanted then
    if not inc.fresh then redis.call('ZREM', K.ESCALATED, inc.id) end
  elseif #inc.units == 0 and inc.state ~= 'escalated' then
    redis.call('ZADD', K.ESCALATED, 'NX', NOW, inc.id)
    transition(inc, 'escalated', {detail = 'no free unit within ' .. C.max_radius_m .. ' m',
                                  priority = inc.priority})
    stat('escalated')
  else
    -- Short of units (a P1 wanting two got one): keep retrying, without a state change.
    redis.call('ZADD', K.ESCALATED, 'NX', NOW, inc.id)
  end
end

-- Back to the free set if on duty with a known position.
local function free_unit(u)
  local k = key('unit', u)
  local h = redis.call('HMGET', k, 'duty', 'lon', 'lat')
  if h[1] == 'on_duty' then
    redis.call('HSET', k, 'status', 'available', 'incident', '')
    if h[2] then
      redis.call('GEOADD', K.UNITS_FREE_GEO, h[2], h[3], u)
      FREED[#FREED + 1] = u
    end
  else
    redis.call('HSET', k, 'status', 'off_duty', 'incident', '')
  end
end

-- Take a unit off an incident (declined, timed out, reassigned, off duty, cancelled...).
local function withdraw(inc, u, reason)
  local i = index_of(inc.units, u)
  if i then table.remove(inc.units, i) end
  save_units(inc)
  redis.call('ZREM', K.ACK_DEADLINES, inc.id .. '|' .. u)
  if redis.call('HGET', key('unit', u), 'incident') == inc.id then free_unit(u) end
  if reason then
    notify_unit(u, {k = 'cancel', v = 1, incident = inc.id, unit = u, reason = reason, ts = NOW})
  end
end

-- Incidents waiting for a unit get a chance at units that just came free, oldest first; each
-- still gets its own nearest unit. Stops as soon as every freed unit has been taken.
local function serve_escalated(limit)
  if #FREED == 0 then return end
  local freed = FREED
  FREED = {}
  if redis.call('ZCARD', K.ESCALATED) == 0 then return end
  for _, id in ipairs(redis.call('ZRANGE', K.ESCALATED, 0, limit - 1)) do
    local inc = load_incident(id)
    if inc and OPEN[inc.state] then fill(inc) else redis.call('ZREM', K.ESCALATED, id) end
    local left = false
    for _, u in ipairs(freed) do
      if redis.call('HGET', key('unit', u), 'status') == 'available' then left = true; break end
    end
    if not left then return end
  end
end

-- ---------------------------------------------------------------------------------------
-- alarms: idempotency, merge, new incidents

local function alarm_type(name)
  local p = TYPES[name]
  if p then return p end
  local raw = redis.call('HGET', K.DISPATCH_TYPES, name)
  if not raw then raw = redis.call('HGET', K.DISPATCH_TYPES, '*') end
  if not raw then error('alarm-type table not loaded') end
  p = cmsgpack.unpack(raw)
  if p.group == '' then p.group = name end
  p.capability = p.capability or ''
  TYPES[name] = p
  return p
end

-- An open incident of the group within the radius whose last report is within the window.
local function find_merge(m, p)
  local area = key('merge_area', p.group)
  local res = redis.call('GEOSEARCH', area, 'FROMLONLAT', m.lon, m.lat,
                         'BYRADIUS', p.radius_m, 'm', 'ASC', 'COUNT', 16)
  for _, id in ipairs(res) do
    local h = redis.call('HMGET', key('incident', id), 'state', 'last_ts')
    if not OPEN[h[1]] then
      redis.call('ZREM', area, id)  -- lazily forget incidents that are over
    elseif math.abs(m.ts - (tonumber(h[2]) or 0)) <= p.window_s then
      return id
    end
  end
  return nil
end

local function join(id, m, p)
  local inc = load_incident(id)
  local k = key('incident', id)
  inc.reports = redis.call('HINCRBY', k, 'reports', 1)
  redis.call('RPUSH', key('incident_alarms', id), m.id)
  if m.ts > inc.last_ts then redis.call('HSET', k, 'last_ts', ts(m.ts)) end
  local more = false
  if p.priority < inc.priority then
    inc.priority = p.priority
    redis.call('HSET', k, 'priority', p.priority)
    if p.units > inc.wanted then
      inc.wanted = p.units
      redis.call('HSET', k, 'wanted', p.units)
      more = inc.state ~= 'escalated'
    end
  end
  event(inc, 'report', {alarm = m.id, reports = inc.reports, priority = inc.priority})
  if more then fill(inc) end
  stat('merged')
end

local function create(m, p, raw_alarm_id)
  local id = C.id_prefix .. redis.call('INCR', K.INCIDENT_SEQ)
  local alarm_ts = ts(m.ts)
  -- (Lua numbers go to Redis with 14 significant digits: plenty for degrees, not for times)
  local f = {'id', id, 'state', 'new', 'priority', p.priority, 'type', m.type,
             'group', p.group, 'lon', m.lon, 'lat', m.lat, 'created', now_s(),
             'reports', 1, 'units', '', 'wanted', p.units, 'first_alarm', m.id,
             'alarm_ts', alarm_ts, 'last_ts', alarm_ts, 't_new', now_s(),
             'capability', p.capability}
  for _, name in ipairs({'pole', 'district', 'grid', 'text'}) do
    if nonempty(m[name]) then f[#f + 1] = name; f[#f + 1] = m[name] end
  end
  redis.call('HSET', key('incident', id), unpack(f))
  redis.call('ZADD', K.INCIDENTS_OPEN, NOW, id)
  redis.call('GEOADD', key('merge_area', p.group), m.lon, m.lat, id)
  redis.call('RPUSH', key('incident_alarms', id), m.id)
  local inc = {id = id, state = 'new', priority = p.priority, type = m.type, group = p.group,
               lon = m.lon, lat = m.lat, grid = m.grid or '', units = {}, wanted = p.units,
               capability = p.capability, reports = 1, pole = nonempty(m.pole),
               district = nonempty(m.district), text = nonempty(m.text), alarm_ts = m.ts,
               fresh = true}
  event(inc, 'new', {alarm = m.id, priority = p.priority, reports = 1})
  stat('incidents')
  fill(inc)
  inc.fresh = false  -- from here on (a split in the same entry...) treat it as any other
  return id
end

local function on_alarm(m, raw)
  clock()
  stat('alarms')
  local akey = key('alarm', m.id)
  if redis.call('EXISTS', akey) == 1 then stat('duplicates'); return end
  local p = alarm_type(m.type)
  local id = find_merge(m, p)
  if id then join(id, m, p) else id = create(m, p) end
  redis.call('SET', akey, id, 'EX', C.alarm_ttl_s)
  redis.call('SET', key('alarm_body', m.id), raw, 'EX', C.alarm_ttl_s)
end

-- ---------------------------------------------------------------------------------------
-- patrol events: positions, duty, answers to dispatches

local function on_position(m)
  local k = key('unit', m.unit)
  local h = redis.call('HMGET', k, 'duty', 'status', 'seen')
  local seen = math.min(m.ts, NOW)
  redis.call('SADD', K.UNITS, m.unit)
  redis.call('HSET', k, 'id', m.unit, 'lon', m.lon, 'lat', m.lat, 'seen', ts(seen))
  if h[1] == 'on_duty' then
    redis.call('GEOADD', K.UNITS_GEO, m.lon, m.lat, m.unit)
    if h[2] == 'available' then
      redis.call('GEOADD', K.UNITS_FREE_GEO, m.lon, m.lat, m.unit)
      -- Only a unit coming back from stale is news for escalated incidents; the timer
      -- retries them anyway, and doing it on every position would be costly.
      if not tonumber(h[3]) or NOW - tonumber(h[3]) > C.stale_after_s then
        FREED[#FREED + 1] = m.unit
      end
    end
  end
end

local function on_duty(m)
  local u, k = m.unit, key('unit', m.unit)
  redis.call('SADD', K.UNITS, u)
  local h = redis.call('HMGET', k, 'status', 'incident', 'lon', 'lat')
  if m.duty == 'on_duty' then
    local status = 'available'
    if nonempty(h[2]) then status = h[1] end
    redis.call('HSET', k, 'id', u, 'duty', 'on_duty', 'status', status, 'grid', m.grid or '',
               'caps', table.concat(m.capabilities or {}, ','))
    local lon, lat = h[3], h[4]
    if m.lon and m.lat then
      lon, lat = m.lon, m.lat
      redis.call('HSET', k, 'lon', lon, 'lat', lat, 'seen', ts(math.min(m.ts, NOW)))
    end
    if lon then
      redis.call('GEOADD', K.UNITS_GEO, lon, lat, u)
      if status == 'available' then
        redis.call('GEOADD', K.UNITS_FREE_GEO, lon, lat, u)
        FREED[#FREED + 1] = u
      end
    end
  else
    -- Off duty first, so releasing it below does not put it back in the free set.
    redis.call('HSET', k, 'id', u, 'duty', 'off_duty', 'status', 'off_duty')
    redis.call('ZREM', K.UNITS_GEO, u)
    redis.call('ZREM', K.UNITS_FREE_GEO, u)
    local inc = load_incident(nonempty(h[2]))
    if inc and OPEN[inc.state] and index_of(inc.units, u) then
      withdraw(inc, u, 'off duty')
      event(inc, 'released', {unit = u, actor = u, detail = 'off duty'})
      fill(inc)
    end
    redis.call('HSET', k, 'incident', '')
  end
end

local function resolve(inc, by, detail)
  transition(inc, 'resolved', {unit = by, actor = by, detail = detail})
  for _, u in ipairs(inc.units) do
    redis.call('ZREM', K.ACK_DEADLINES, inc.id .. '|' .. u)
    if redis.call('HGET', key('unit', u), 'incident') == inc.id then free_unit(u) end
    if u ~= by then
      notify_unit(u, {k = 'cancel', v = 1, incident = inc.id, unit = u,
                      reason = 'resolved by ' .. by, ts = NOW})
    end
  end
  close_out(inc)
end

local function on_status(m)
  local inc = load_incident(m.incident)
  if not inc then reject('unknown incident ' .. m.incident) end
  if not OPEN[inc.state] then reject('incident ' .. inc.id .. ' is ' .. inc.state) end
  if not index_of(inc.units, m.unit) then
    reject('unit ' .. m.unit .. ' is not assigned to incident ' .. inc.id)
  end
  local pending = redis.call('ZREM', K.ACK_DEADLINES, inc.id .. '|' .. m.unit) == 1
  local ev = {unit = m.unit, actor = m.unit, detail = m.detail}
  if m.action == 'declined' then
    if not pending then reject('only an unacknowledged dispatch can be declined') end
    redis.call('SADD', key('incident_tried', inc.id), m.unit)
    withdraw(inc, m.unit, nil)
    event(inc, 'declined', ev)
    fill(inc)
    return
  end
  if m.action == 'acknowledged' and not pending then
    reject('dispatch of ' .. inc.id .. ' to ' .. m.unit .. ' is not awaiting acknowledgement')
  end
  -- Any answer counts as the acknowledgement a unit may have skipped.
  if pending then redis.call('HSET', key('unit', m.unit), 'status', 'busy') end
  if m.action == 'resolved' then resolve(inc, m.unit, m.detail)
  else advance(inc, m.action, ev) end
end

-- ---------------------------------------------------------------------------------------
-- command-centre overrides

-- A unit the operator named: on duty, free, with a position.
local function named_unit(u)
  local h = redis.call('HMGET', key('unit', u), 'duty', 'status', 'lon', 'lat')
  if h[1] ~= 'on_duty' or h[2] ~= 'available' or not h[3] then
    reject('unit ' .. u .. ' is not free and on duty')
  end
  return tonumber(h[3]), tonumber(h[4])
end

local function assign_named(inc, u, actor)
  local lon, lat = named_unit(u)
  assign(inc, u, haversine(inc.lon, inc.lat, lon, lat), actor)
end

local function require_open(inc)
  if not OPEN[inc.state] then reject('incident ' .. inc.id .. ' is ' .. inc.state) end
end

local function withdraw_all(inc, reason)
  for _, u in ipairs({unpack(inc.units)}) do withdraw(inc, u, reason) end
end

local function merge_into(inc, other, m)
  if other.id == inc.id then reject('cannot merge an incident into itself') end
  require_open(other)
  local alarms = redis.call('LRANGE', key('incident_alarms', other.id), 0, -1)
  for _, a in ipairs(alarms) do
    redis.call('RPUSH', key('incident_alarms', inc.id), a)
    redis.call('SET', key('alarm', a), inc.id, 'KEEPTTL')
  end
  local k = key('incident', inc.id)
  inc.reports = redis.call('HINCRBY', k, 'reports', other.reports)
  if other.priority < inc.priority then
    inc.priority = other.priority
    redis.call('HSET', k, 'priority', inc.priority)
  end
  if other.last_ts > inc.last_ts then redis.call('HSET', k, 'last_ts', ts(other.last_ts)) end
  withdraw_all(other, 'merged into ' .. inc.id)
  redis.call('HSET', key('incident', other.id), 'merged_into', inc.id)
  transition(other, 'merged', {actor = m.actor, detail = 'into ' .. inc.id})
  close_out(other)
  event(inc, 'report', {actor = m.actor, reports = inc.reports, priority = inc.priority,
                        detail = 'merged incident ' .. other.id})
end

local function split_out(inc, alarm_id, m)
  if inc.reports <= 1 then reject('cannot split the only alarm of incident ' .. inc.id) end
  local raw = redis.call('GET', key('alarm_body', alarm_id))
  if not raw then reject('alarm ' .. alarm_id .. ' is unknown or expired') end
  if redis.call('LREM', key('incident_alarms', inc.id), 1, alarm_id) == 0 then
    reject('alarm ' .. alarm_id .. ' is not part of incident ' .. inc.id)
  end
  inc.reports = redis.call('HINCRBY', key('incident', inc.id), 'reports', -1)
  local a = cmsgpack.unpack(raw)
  local new_id = create(a, alarm_type(a.type))
  redis.call('SET', key('alarm', alarm_id), new_id, 'KEEPTTL')
  event(inc, 'report', {actor = m.actor, alarm = alarm_id, reports = inc.reports,
                        detail = 'alarm split out into ' .. new_id})
end

local function on_command(m)
  local inc = load_incident(m.incident)
  if not inc then reject('unknown incident ' .. m.incident) end
  local op = m.op
  if op == 'close' then
    if inc.state ~= 'resolved' then require_open(inc) end
    withdraw_all(inc, 'closed by ' .. m.actor)
    redis.call('HSET', key('incident', inc.id), 'evaluation', m.evaluation)
    transition(inc, 'closed', {actor = m.actor, detail = m.detail or
                               ('evaluation ' .. m.evaluation)})
    close_out(inc)
    return
  end
  require_open(inc)
  if op == 'cancel' then
    withdraw_all(inc, 'cancelled by ' .. m.actor)
    transition(inc, 'cancelled', {actor = m.actor, detail = m.detail})
    close_out(inc)
  elseif op == 'reassign' then
    if m.unit then named_unit(m.unit) end  -- check before releasing anyone
    for _, u in ipairs(inc.units) do redis.call('SADD', key('incident_tried', inc.id), u) end
    withdraw_all(inc, 'reassigned by ' .. m.actor)
    event(inc, 'reassigned', {actor = m.actor, unit = m.unit, detail = m.detail})
    if m.unit then assign_named(inc, m.unit, m.actor) else fill(inc, m.actor) end
  elseif op == 'add_unit' then
    if m.unit then named_unit(m.unit) end
    inc.wanted = #inc.units + 1
    redis.call('HSET', key('incident', inc.id), 'wanted', inc.wanted)
    if m.unit then assign_named(inc, m.unit, m.actor) else fill(inc, m.actor) end
  elseif op == 'merge' then
    local other = load_incident(m.other)
    if not other then reject('unknown incident ' .. tostring(m.other)) end
    merge_into(inc, other, m)
  elseif op == 'split' then
    split_out(inc, m.other, m)
  end
end

-- ---------------------------------------------------------------------------------------
-- entry points

local STREAMS = {a = 'ALARMS', p = 'PATROL_EVENTS', c = 'COMMANDS'}

local function zone_keys(prefix)
  local k = K_OF[prefix]
  if k then return k end
  k = {}
  for name, v in pairs(GLOBAL) do k[name] = v end
  for name, v in pairs(ZONED) do
    if type(v) == 'table' then k[name] = {prefix .. v[1], v[2]}
    else k[name] = prefix .. v end
  end
  K_OF[prefix] = k
  return k
end

local function begin(settings)
  C = cmsgpack.unpack(settings)
  K = zone_keys(C.prefix)
  STATS, TYPES, FREED, TIMELINE, TOUCHED = {}, {}, {}, {}, {}
  for _, n in ipairs(STAT_NAMES) do STATS[n] = 0 end
  clock()
end

local function result()
  local out = {}
  for i, n in ipairs(STAT_NAMES) do out[i] = STATS[n] end
  return out
end

-- Same fields as polewatch.deadletter.record (the convention every consumer follows).
local function dead_letter(stream, eid, raw, reason)
  redis.call('XADD', K.DEADLETTER, 'MAXLEN', '~', C.deadletter_maxlen, '*',
             'stream', stream, 'id', eid, 'reason', string.sub(reason, 1, 1000),
             'consumer', C.consumer, 'ts', now_s(), 'raw:m', raw)
  stat('rejected')
end

local function handle(code, raw)
  local m = cmsgpack.unpack(raw)
  if code == 'a' then on_alarm(m, raw)
  elseif code == 'p' then
    clock()
    stat('patrol')
    if m.k == 'pos' then on_position(m)
    elseif m.k == 'duty' then on_duty(m)
    else on_status(m) end
  else
    clock()
    stat('commands')
    on_command(m)
  end
  serve_escalated(C.escalated_batch)
end

-- Acknowledge the batch's entries, two calls per stream; the set of those that were still
-- pending. XCLAIM ... JUSTID (to ourselves, idle 0) answers exactly the ids still pending:
-- one acknowledged meanwhile by a replica that claimed it is left out, and skipped.
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
    local claim = {'XCLAIM', stream, C.group, C.consumer, 0, unpack(list)}
    claim[#claim + 1] = 'JUSTID'
    for _, id in ipairs(redis.call(unpack(claim))) do pending[code .. id] = true end
    redis.call('XACK', stream, C.group, unpack(list))
  end
  return pending
end

local function batch(keys, args)
  begin(args[1])
  -- Someone flushed Redis: refuse the whole batch (nothing acknowledged) so the replica
  -- loads its setup again and retries, rather than dead-lettering good alarms.
  if redis.call('EXISTS', K.DISPATCH_TYPES) == 0 then
    return redis.error_reply('NOTYPES alarm-type table not loaded')
  end
  local pending = acknowledge(args)
  for i = 2, #args, 3 do
    local code, eid, raw = args[i], args[i + 1], args[i + 2]
    local stream = K[STREAMS[code]]
    if eid ~= '' and not pending[code .. eid] then
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
  end
  return result()
end

local function tick(keys, args)
  begin(args[1])
  local due = redis.call('ZRANGEBYSCORE', K.ACK_DEADLINES, '-inf', NOW,
                         'LIMIT', 0, C.expire_batch)
  for _, member in ipairs(due) do
    redis.call('ZREM', K.ACK_DEADLINES, member)
    local id, u = string.match(member, '^(.*)|(.*)$')
    local inc = load_incident(id)
    if inc and OPEN[inc.state] and index_of(inc.units, u) then
      redis.call('SADD', key('incident_tried', id), u)
      withdraw(inc, u, 'no acknowledgement within ' .. C.ack_timeout_s .. ' s')
      event(inc, 'timeout', {unit = u})
      fill(inc)
      stat('expired')
    end
  end
  for _, id in ipairs(redis.call('ZRANGE', K.ESCALATED, 0, C.escalated_batch - 1)) do
    local inc = load_incident(id)
    if inc and OPEN[inc.state] then fill(inc) else redis.call('ZREM', K.ESCALATED, id) end
  end
  flush()
  return result()
end

-- ---------------------------------------------------------------------------------------
-- border routing (read-only; see dispatcher/routing.py)

-- pw_route: ARGV[1] = settings, then per alarm <lon> <lat> <border m> <merge group> <merge
-- radius m>. Per alarm {unit, incident, refs}: whether a free unit of this zone is nearer than
-- the border, whether an incident of this zone is within the merge radius (asked only when
-- there is no such unit), and the incidents of other zones placed here within the radius.
local function route(keys, args)
  begin(args[1])
  local out = {}
  for i = 2, #args, 5 do
    local lon, lat, border, group, radius = args[i], args[i + 1], tonumber(args[i + 2]),
                                            args[i + 3], args[i + 4]
    local unit = #redis.call('GEOSEARCH', K.UNITS_FREE_GEO, 'FROMLONLAT', lon, lat, 'BYRADIUS',
                             math.max(border, 0.01), 'm', 'COUNT', 1, 'ANY') > 0
    local home = false
    if not unit then
      home = #redis.call('GEOSEARCH', key('merge_area', group), 'FROMLONLAT', lon, lat,
                         'BYRADIUS', radius, 'm', 'COUNT', 1, 'ANY') > 0
    end
    local refs = redis.call('GEOSEARCH', key('merge_refs', group), 'FROMLONLAT', lon, lat,
                            'BYRADIUS', radius, 'm', 'ASC', 'COUNT', 4)
    out[#out + 1] = {unit and 1 or 0, home and 1 or 0, refs}
  end
  return out
end

-- pw_nearest: ARGV[1] = settings, then per point <lon> <lat> <from m> <up to m>. Per point the
-- distance (m, as a string) of this zone's nearest free unit within <up to m>, or ''. Up to
-- the largest radius, the expanding radii are searched from the first one reaching <from m>.
local function nearest(keys, args)
  begin(args[1])
  local out = {}
  local max = C.radii[#C.radii]
  for i = 2, #args, 4 do
    local lon, lat, from, upto = args[i], args[i + 1], tonumber(args[i + 2]), tonumber(args[i + 3])
    local found = ''
    if upto < max then
      local res = redis.call('GEOSEARCH', K.UNITS_FREE_GEO, 'FROMLONLAT', lon, lat,
                             'BYRADIUS', math.max(upto, 0.01), 'm', 'ASC', 'COUNT', 1, 'WITHDIST')
      if res[1] then found = res[1][2] end
    else
      for _, r in ipairs(C.radii) do
        if r >= from then
          local res = redis.call('GEOSEARCH', K.UNITS_FREE_GEO, 'FROMLONLAT', lon, lat,
                                 'BYRADIUS', r, 'm', 'ASC', 'COUNT', 1, 'WITHDIST')
          if res[1] then found = res[1][2]; break end
        end
      end
    end
    out[#out + 1] = found
  end
  return out
end

redis.register_function{function_name = 'pw_route', callback = route, flags = {'no-writes'}}
redis.register_function{function_name = 'pw_nearest', callback = nearest, flags = {'no-writes'}}
redis.register_function('pw_batch', batch)
redis.register_function('pw_tick', tick)
redis.register_function('pw_version', function() return VERSION end)
