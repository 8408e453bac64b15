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
  p.priority_s, p.units_s, p.radius_s = A(p.priority), A(p.units), A(p.radius_m)
  TYPES[name] = p
  return p
end

-- An open incident of the group within the radius whose last report is within the window
-- (loaded: the report joins it).
local function find_merge(m, p)
  local area = key('merge_area', p.group)
  local lon, lat = at(m)
  local res = redis.call('GEOSEARCH', area, 'FROMLONLAT', lon, lat,
                         'BYRADIUS', p.radius_s, 'm', 'ASC', 'COUNT', '16')
  for _, id in ipairs(res) do
    local inc = load_incident(id)
    if not inc or not OPEN[inc.state] then
      redis.call('ZREM', area, id)  -- lazily forget incidents that are over
    elseif math.abs(m.ts - inc.last_ts) <= p.window_s then
      return inc
    end
  end
  return nil
end

local function join(inc, m, p)
  inc.reports = inc.reports + 1
  local f = {'reports', A(inc.reports)}
  add_alarm(inc, m.id)
  if m.ts > inc.last_ts then f[#f + 1] = 'last_ts'; f[#f + 1] = m.ts_s or ts(m.ts) end
  if m.extra and m.extra.caller_far_m then
    f[#f + 1] = 'caller_far_m'; f[#f + 1] = m.extra.caller_far_m
  end
  local more = false
  if p.priority < inc.priority then
    inc.priority = p.priority
    f[#f + 1] = 'priority'; f[#f + 1] = p.priority_s
    if p.units > inc.wanted then
      inc.wanted = p.units
      f[#f + 1] = 'wanted'; f[#f + 1] = p.units_s
      more = inc.state ~= 'escalated'
    end
  end
  redis.call('HSET', key('incident', inc.id), unpack(f))  -- one write of what the report changed
  event(inc, 'report', {alarm = m.id, reports = inc.reports, priority = inc.priority})
  if more then fill(inc) end
  stat('merged')
end

local function create(m, p, raw_alarm_id)
  local id = C.id_prefix .. next_incident_number()
  local alarm_ts = m.ts_s or ts(m.ts)
  local lon, lat = at(m)
  -- Stored once (polewatch/records.py derives the rest): no 'created' (it is t_new), no
  -- 'last_ts' while it is alarm_ts, no 'group' equal to the type, no empty fields.
  local f = {id = id, state = 'new', priority = p.priority_s, type = m.type, lon = lon,
             lat = lat, reports = '1', wanted = p.units_s, first_alarm = m.id,
             alarm_ts = alarm_ts, t_new = now_s()}
  if p.group ~= m.type then f.group = p.group end
  if p.capability ~= '' then f.capability = p.capability end
  for _, name in ipairs({'pole', 'district', 'grid', 'text'}) do
    if nonempty(m[name]) then f[name] = m[name] end
  end
  f.caller_far_m = m.extra and m.extra.caller_far_m  -- reporter far from the pole (gateway)
  opened(id)
  redis.call('GEOADD', key('merge_area', p.group), lon, lat, id)
  local inc = {id = id, state = 'new', priority = p.priority, type = m.type, group = p.group,
               lon = m.lon, lat = m.lat, lon_s = lon, lat_s = lat, grid = m.grid or '', units = {}, wanted = p.units,
               capability = p.capability, reports = 1, pole = nonempty(m.pole),
               district = nonempty(m.district), text = nonempty(m.text), alarm_ts = m.ts,
               first_alarm = m.id, fresh = true, rank = RANK, fields = f}
  event(inc, 'new', {alarm = m.id, priority = p.priority, reports = 1})
  stat('incidents')
  fill(inc)
  -- Its hash once, with what its first decision added (state, units, t_dispatched...).
  local flat = {}
  for name, v in pairs(f) do flat[#flat + 1] = name; flat[#flat + 1] = v end
  redis.call('HSET', key('incident', id), unpack(flat))
  inc.fields = nil
  inc.fresh = false  -- from here on (a split in the same entry...) treat it as any other
  return id
end

local function on_alarm(m, raw)
  stat('alarms')
  local akey = key('alarm', m.id)
  if redis.call('EXISTS', akey) == 1 then stat('duplicates'); return end
  local p = alarm_type(m.type)
  local id
  local inc = find_merge(m, p)
  if inc then join(inc, m, p); id = inc.id else id = create(m, p) end
  -- The idempotency record and the alarm's body, one key (see alarm_body).
  redis.call('SET', akey, id .. '\n' .. raw, 'EX', S.alarm_ttl_s)
end
