-- polewatch_dispatch, patrol.lua: one part of the library, concatenated in order by
-- dispatcher/library.py (see common.lua). Uses common.lua, incidents.lua and units.lua.

-- ---------------------------------------------------------------------------------------
-- patrol events: positions, duty, answers to dispatches

local function on_position(m)
  local k = key('unit', m.unit)
  local h = redis.call('HMGET', k, 'duty', 'status', 'seen')
  local seen = math.min(m.ts, NOW)
  local lon, lat = at(m)
  redis.call('SADD', K.UNITS, m.unit)
  redis.call('HSET', k, 'id', m.unit, 'lon', lon, 'lat', lat, 'seen', ts(seen))
  if h[1] == 'on_duty' then
    redis.call('GEOADD', K.UNITS_GEO, lon, lat, m.unit)
    if h[2] == 'available' then
      free_add(lon, lat, m.unit)
      -- Only a unit coming back from stale is news for escalated incidents; the timer
      -- retries them anyway, and doing it on every position would be costly.
      if not tonumber(h[3]) or NOW - tonumber(h[3]) > C.stale_after_s then
        FREED[#FREED + 1] = m.unit
      end
    end
  end
end

-- ---------------------------------------------------------------------------------------
-- unresponsive units: a unit that lets C.unresponsive_after dispatches in a row time out is
-- taken out of the rotation (status 'unresponsive', out of the free set) until it answers
-- (it goes off and on duty again: a phone that reconnects only says "on duty", which proves
-- nobody is there) or an operator restores it (the restore_unit command). Any answer to a
-- dispatch (ack, decline, progress) starts the count again.

local function missed(inc, u)
  local k = key('unit', u)
  local n = redis.call('HINCRBY', k, 'missed', 1)
  redis.call('HSET', k, 'missed_incident', inc.id)
  if C.unresponsive_after > 0 and n >= C.unresponsive_after
      and redis.call('HGET', k, 'status') == 'available' then
    redis.call('HSET', k, 'status', 'unresponsive')
    free_remove(u)
    event(inc, 'unresponsive', {unit = u, detail = n .. ' dispatches in a row not acknowledged'})
    -- The phone tells the officer why nothing comes any more, and how to come back.
    notify_unit(u, {k = 'cancel', v = 1, incident = inc.id, unit = u, ts = NOW,
                    reason = n .. ' dispatches in a row not acknowledged: out of the rotation'
                             .. ' until you go off duty and on duty again'})
  end
end

local function restore(inc, u, actor, detail)
  local k = key('unit', u)
  if redis.call('HGET', k, 'status') ~= 'unresponsive' then
    reject('unit ' .. u .. ' is not unresponsive')
  end
  redis.call('HSET', k, 'missed', 0)
  free_unit(u)
  event(inc, 'restored', {unit = u, actor = actor, detail = detail})
end

local function on_duty(m)
  local u, k = m.unit, key('unit', m.unit)
  redis.call('SADD', K.UNITS, u)
  unit_changed(u)
  local h = redis.call('HMGET', k, 'status', 'incident', 'lon', 'lat')
  if m.duty == 'on_duty' then
    local status = 'available'
    if nonempty(h[2]) or h[1] == 'unresponsive' then status = h[1] end
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
        free_add(lon, lat, u)
        FREED[#FREED + 1] = u
      end
    end
  else
    -- Off duty first, so releasing it below does not put it back in the free set.
    redis.call('HSET', k, 'id', u, 'duty', 'off_duty', 'status', 'off_duty', 'missed', 0)
    redis.call('ZREM', K.UNITS_GEO, u)
    free_remove(u)
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
    deadline_remove(inc.id .. '|' .. u)
    if redis.call('HGET', key('unit', u), 'incident') == inc.id then free_unit(u) end
    if u ~= by then
      notify_unit(u, {k = 'cancel', v = 1, incident = inc.id, unit = u,
                      reason = 'resolved by ' .. by, ts = NOW})
    end
  end
  close_out(inc)
  redis.call('ZADD', K.RESOLVED, now_s(), inc.id)  -- to be closed by an operator
end

local function on_status(m)
  local inc = load_incident(m.incident)
  if not inc then reject('unknown incident ' .. m.incident) end
  if not OPEN[inc.state] then reject('incident ' .. inc.id .. ' is ' .. inc.state) end
  if not index_of(inc.units, m.unit) then
    reject('unit ' .. m.unit .. ' is not assigned to incident ' .. inc.id)
  end
  local pending = deadline_remove(inc.id .. '|' .. m.unit) == 1
  if pending then redis.call('HSET', key('unit', m.unit), 'missed', 0) end  -- it answered
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
    -- Already working it: a report of progress acknowledged it (below), and this ack, sent
    -- first, was taken by a slower replica. Late, not wrong: nothing to do, nothing to report.
    if redis.call('HGET', key('unit', m.unit), 'status') == 'busy' then return end
    reject('dispatch of ' .. inc.id .. ' to ' .. m.unit .. ' is not awaiting acknowledgement')
  end
  -- Any answer counts as the acknowledgement a unit may have skipped.
  if pending then redis.call('HSET', key('unit', m.unit), 'status', 'busy') end
  if m.action == 'resolved' then resolve(inc, m.unit, m.detail)
  else advance(inc, m.action, ev) end
end
