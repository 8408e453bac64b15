-- polewatch_dispatch, units.lua: one part of the library, concatenated in order by
-- dispatcher/library.py (see common.lua). Uses common.lua and incidents.lua.

-- ---------------------------------------------------------------------------------------
-- units: finding the nearest eligible one, assigning, releasing

-- Units looked at during the decision being made (find_unit): unit -> its grid when it may
-- take the incident, else false. The searches of one decision (radii, grid preference) list
-- the same nearest units again, and nothing changes a unit while the decision is made.
local LOOKED = {}

-- The unit's grid if it may take the incident, else nil.
local function eligible(u, inc)
  local known = LOOKED[u]
  if known ~= nil then return known or nil end
  LOOKED[u] = false
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
  LOOKED[u] = h[3] or ''
  return LOOKED[u]
end

-- The first eligible unit of a search's answer (nearest first) up to `upto` m, in grid
-- `want_grid` when given: unit, m, grid.
local function first_eligible(inc, res, upto, want_grid)
  for i = 1, #res do
    local d = tonumber(res[i][2])
    if d > upto then return nil end
    local g = eligible(res[i][1], inc)
    if g and (not want_grid or g == want_grid) then return res[i][1], d, g end
  end
  return nil
end

-- The decision's last search around the incident: its answer, and the distance up to which
-- that answer lists every free unit. The grid preference looks there before searching again.
local SEARCHED, COVERS

-- Nearest eligible free unit within radius (in grid `want_grid` when given).
-- (`radius_s`: the radius as an argument, when it is one of the settings' radii)
local function nearest_within(inc, radius, want_grid, radius_s)
  local count, count_s = 8, '8'
  local lon, lat = at(inc)
  while true do
    local res = redis.call('GEOSEARCH', K.UNITS_FREE_GEO, 'FROMLONLAT', lon, lat,
                           'BYRADIUS', radius_s or radius, 'm', 'ASC', 'COUNT', count_s,
                           'WITHDIST')
    SEARCHED, COVERS = res, radius
    if #res == count then COVERS = tonumber(res[#res][2]) end
    local u, d, g = first_eligible(inc, res, radius, want_grid)
    if u or #res < count then return u, d, g end
    count = count * 4  -- all of the closest were ineligible: look further down the list
    count_s = A(count)
  end
end

-- The fastest eligible unit of the road shortlist (sorted by drive time), as u, road m, eta
-- s; a unit of the incident's own grid wins when it is at most grid_pref_s slower. A unit
-- claimed since the list was made is no longer free (eligible), so the next one is taken.
local function ranked_unit(inc, rank)
  local us, etas, ds = rank.u, rank.t, rank.d
  local best
  for i = 1, #us do
    if best and etas[i] > etas[best] + C.grid_pref_s then break end
    local g = eligible(us[i], inc)
    if g then
      if not best then
        best = i
        if C.grid_pref_s <= 0 or inc.grid == '' or g == inc.grid then break end
      elseif g == inc.grid then
        return us[i], ds[i], etas[i]
      end
    end
  end
  if best then return us[best], ds[best], etas[best] end
  return nil
end

-- The unit to send: by drive time from the incident's road shortlist when it has one, else
-- by the expanding straight-line search, the reason kept in inc.why for the audit. By air, a
-- unit of the incident's own grid wins when it is at most grid_pref_m farther than the nearest.
local function find_unit(inc)
  LOOKED = {}
  local rank = inc.rank
  if rank and rank.u then
    local u, d, eta = ranked_unit(inc, rank)
    -- Slower than the time up to which the list holds every free unit: its faster units
    -- were taken or ineligible, and one beyond the list might have been faster.
    inc.unproven = u and rank.b and eta > rank.b
    if u then return u, d, eta end
    inc.why = 'no eligible unit on the road shortlist'
  else
    inc.why = rank and rank.why or 'no road shortlist for this decision'
  end
  -- Nobody free at all (an overloaded zone): one question, not one per radius. (A GEOSEARCH
  -- ... ANY over the largest radius would cost more than the searches it saves.)
  if free_count() == 0 then return nil end
  for i, r in ipairs(C.radii) do
    local u, d, g = nearest_within(inc, r, nil, S.radii[i])
    if u then
      if C.grid_pref_m > 0 and inc.grid ~= '' and g ~= inc.grid then
        local reach, gu, gd = d + C.grid_pref_m
        if reach < COVERS then gu, gd = first_eligible(inc, SEARCHED, reach, inc.grid)
        else gu, gd = nearest_within(inc, reach, inc.grid) end
        if gu then return gu, gd end
      end
      return u, d
    end
  end
  return nil
end

local function notify_unit(u, msg)
  redis.call('XADD', key('unit_inbox', u), 'MAXLEN', '~', S.inbox_maxlen, '*', 'm',
             cmsgpack.pack(msg))
  announce(K.UNIT_NOTIFY, u)
end

-- `eta` (s) is given when `d` is the road distance of a drive-time choice; without it `d` is
-- the straight-line distance and inc.why says why the road graph was not used.
local function assign(inc, u, d, actor, eta)
  free_remove(u)
  redis.call('HSET', key('unit', u), 'status', 'dispatched', 'incident', inc.id)
  inc.units[#inc.units + 1] = u
  local ack_by = NOW + C.ack_timeout_s
  if not ACK_BY_S then ACK_BY_S = A(ack_by) end
  notify_unit(u, {
    k = 'dispatch', v = 1, incident = inc.id, unit = u, priority = inc.priority,
    type = inc.type, lon = inc.lon, lat = inc.lat, ts = NOW, ack_by = ack_by,
    alarm_ts = inc.alarm_ts, pole = inc.pole, district = inc.district,
    grid = nonempty(inc.grid), text = inc.text, distance_m = d, reports = inc.reports,
    eta_s = eta, route = d and (eta and 'road' or 'air'),
  })
  deadline_add(inc.id .. '|' .. u)
  local ev = {unit = u, actor = actor, priority = inc.priority, distance_m = d, eta_s = eta,
              route = d and (eta and 'road' or 'air')}
  if d and not eta then
    ev.detail = string.format('straight-line %.0f m: %s', d, inc.why or 'named by an operator')
  elseif inc.unproven then
    ev.detail = 'by road; not proven fastest (the road shortlist ran out of faster free units)'
  end
  -- The first unit (again, after a reassignment) puts the incident back to 'dispatched'.
  local units = {'units', table.concat(inc.units, ',')}
  if #inc.units == 1 and inc.state ~= 'dispatched' then transition(inc, 'dispatched', ev, units)
  else
    hset(inc, units)
    event(inc, 'dispatched', ev)
  end
  stat('dispatched')
end

-- Give the incident units until it has as many as it wants; escalate when nobody is free.
local function fill(inc, actor)
  while #inc.units < inc.wanted do
    local u, d, eta = find_unit(inc)
    if not u then break end
    assign(inc, u, d, actor, eta)
  end
  if #inc.units >= inc.wanted then
    if not inc.fresh then redis.call('ZREM', K.ESCALATED, inc.id) end
  elseif #inc.units == 0 and inc.state ~= 'escalated' then
    redis.call('ZADD', K.ESCALATED, 'NX', now_s(), inc.id)
    transition(inc, 'escalated', {detail = 'no free unit within ' .. C.max_radius_m .. ' m',
                                  priority = inc.priority})
    stat('escalated')
  else
    -- Short of units (a P1 wanting two got one): keep retrying, without a state change.
    redis.call('ZADD', K.ESCALATED, 'NX', now_s(), inc.id)
  end
end

-- Back to the free set if on duty with a known position.
local function free_unit(u)
  local k = key('unit', u)
  local h = redis.call('HMGET', k, 'duty', 'lon', 'lat')
  unit_changed(u)
  if h[1] == 'on_duty' then
    redis.call('HSET', k, 'status', 'available', 'incident', '')
    if h[2] then
      free_add(h[2], h[3], u)
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
  deadline_remove(inc.id .. '|' .. u)
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
