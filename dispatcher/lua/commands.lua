-- polewatch_dispatch, commands.lua: one part of the library, concatenated in order by
-- dispatcher/library.py (see common.lua). Uses common.lua, incidents.lua, units.lua and alarms.lua (create).

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
  for _, a in ipairs(alarms_of(other)) do
    add_alarm(inc, a)
    repoint(a, inc.id)
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
  local raw = alarm_body(alarm_id)
  if not raw then reject('alarm ' .. alarm_id .. ' is unknown or expired') end
  if redis.call('LREM', key('incident_alarms', inc.id), 1, alarm_id) == 0 then
    reject('alarm ' .. alarm_id .. ' is not part of incident ' .. inc.id)
  end
  inc.reports = redis.call('HINCRBY', key('incident', inc.id), 'reports', -1)
  local a = cmsgpack.unpack(raw)
  local new_id = create(a, alarm_type(a.type))
  repoint(alarm_id, new_id)
  event(inc, 'report', {actor = m.actor, alarm = alarm_id, reports = inc.reports,
                        detail = 'alarm split out into ' .. new_id})
end

local function on_command(m)
  local inc = load_incident(m.incident)
  if not inc then reject('unknown incident ' .. m.incident) end
  local op = m.op
  if op == 'restore_unit' then  -- audited on the incident the unit last let time out
    restore(inc, m.unit, m.actor, m.detail)
    return
  end
  if op == 'close' then
    if inc.state == 'resolved' then redis.call('ZREM', K.RESOLVED, inc.id)
    else require_open(inc) end
    withdraw_all(inc, 'closed by ' .. m.actor)
    redis.call('HSET', key('incident', inc.id), 'evaluation', m.evaluation)
    transition(inc, 'closed', {actor = m.actor, detail = m.detail or
                               ('evaluation ' .. m.evaluation)})
    close_out(inc)
    return
  end
  if op == 'note' then  -- in the timeline; to the phones of the units on it
    if inc.state ~= 'resolved' then require_open(inc) end
    event(inc, 'note', {actor = m.actor, detail = m.detail})
    if OPEN[inc.state] then
      for _, u in ipairs(inc.units) do
        notify_unit(u, {k = 'note', v = 1, incident = inc.id, unit = u, text = m.detail,
                        actor = m.actor, ts = NOW})
      end
    end
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
