-- polewatch_dispatch, border.lua: one part of the library, concatenated in order by
-- dispatcher/library.py (see common.lua). Uses common.lua only (read-only functions, registered in entry.lua).

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
