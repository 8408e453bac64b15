-- polewatch_dispatch, alarms.lua: one part of the library, concatenated in order by
-- dispatcher/library.py (see common.lua). Uses common.lua, incidents.lua and units.lua (fill).

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
  if m.extra and m.extra.caller_far_m then
    redis.call('HSET', k, 'caller_far_m', m.extra.caller_far_m)
  end
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
  local far = m.extra and m.extra.caller_far_m  -- reporter far from the pole (gateway)
  if far then f[#f + 1] = 'caller_far_m'; f[#f + 1] = far end
  redis.call('HSET', key('incident', id), unpack(f))
  redis.call('ZADD', K.INCIDENTS_OPEN, NOW, id)
  redis.call('GEOADD', key('merge_area', p.group), m.lon, m.lat, id)
  redis.call('RPUSH', key('incident_alarms', id), m.id)
  local inc = {id = id, state = 'new', priority = p.priority, type = m.type, group = p.group,
               lon = m.lon, lat = m.lat, grid = m.grid or '', units = {}, wanted = p.units,
               capability = p.capability, reports = 1, pole = nonempty(m.pole),
               district = nonempty(m.district), text = nonempty(m.text), alarm_ts = m.ts,
               fresh = true, rank = RANK}
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
