--[[
polewatch dispatch library: every decision about incidents and units, made atomically inside
Redis. The Python dispatcher only reads the streams, validates and forwards; a batch is one
FCALL, so a dispatcher killed at any moment either did a whole batch (and acknowledged its
entries) or did nothing.

The library is one source made of the parts in this folder, concatenated by
dispatcher/library.py in the order of its PARTS (common, incidents, units, alarms, patrol,
commands, border, entry: each part uses only the locals of the parts before it). library.py
writes the '#!lua name=' line and fills in {{VERSION}} (a hash of the whole source), {{ZONED}}
and {{GLOBAL}} (key templates from polewatch/keys.py, the one place key names are made).
This file: the state of the current call and the small helpers.

Functions
  pw_batch   ARGV[1] = settings (MessagePack map, library.settings_arg), then triples
             <stream code a|p|c> <entry id or ''> <canonical wire message (MessagePack)>.
             The batch's entries are acknowledged first (XPENDING over their range + XACK
             per stream); one no longer pending (a replica that claimed it did the work) is
             skipped; ''
             means "not from a stream" (benchmarks, tools). A rejected entry is dead-lettered
             here with the reason. Fails with NOTYPES, acknowledging nothing, when the
             alarm-type table is missing (Redis was flushed). Returns the STAT_NAMES counters.
             A triple 'r' '' <road shortlist (MessagePack)> gives the alarm after it its units
             ranked by drive time (dispatcher/drive.py); without one the alarm's unit is found
             by the straight-line search, and the audit says so. A triple 'f' '' <digest>
             right after an alarm's is the alarm's fields as library.digest made them
             (spares decoding the alarm and formatting its numbers here); optional.
  pw_tick    ARGV[1] = settings, then pairs <incident id> <road shortlist>. Expires
             unacknowledged dispatches (re-dispatch to the next fastest) and retries escalated
             incidents. Returns the counters.
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
local S             -- the numeric settings as the strings Redis is given (A below)
local NOW = 0       -- server time (seconds, float), read once per call by begin()
local STATS         -- counters of the current call
local TYPES         -- alarm-type parameters read during the current call
local FREED         -- units freed during the current entry (offered to escalated incidents)
local TIMELINE      -- incident id -> packed events of the current entry, pushed by flush()
local TOUCHED       -- incidents whose timeline the current entry added to
-- Road shortlists computed by the dispatcher before the call (dispatcher/drive.py): RANK for
-- the alarm being handled (pw_batch: the 'r' entry before it), RANKS[incident id] for pw_tick.
-- A shortlist is {u = {unit ids}, t = {eta s}, d = {road m}} fastest first, or {why = reason}
-- when the road graph could not answer.
local RANK
local RANKS
-- The alarm being handled as the dispatcher digested it (pw_batch: the 'f' entry after it),
-- or nil: then the alarm itself is decoded.
local FLAT

local STAT_NAMES = {'alarms', 'duplicates', 'incidents', 'merged', 'dispatched', 'escalated',
                    'rejected', 'skipped', 'patrol', 'commands', 'expired'}

local OPEN = {new = true, dispatched = true, acknowledged = true, en_route = true,
              on_scene = true, escalated = true}
-- Progress of an incident; a unit's report only moves the incident forward.
local ORDER = {new = 0, escalated = 0, dispatched = 1, acknowledged = 2, en_route = 3,
               on_scene = 4, resolved = 5, closed = 6}

local INCIDENT_FIELDS = {'id', 'state', 'priority', 'type', 'group', 'lon', 'lat', 'grid',
                         'units', 'wanted', 'capability', 'reports', 'pole', 'district', 'text',
                         'alarm_ts', 'last_ts', 'first_alarm'}

-- ---------------------------------------------------------------------------------------
-- small helpers

local NOW_S         -- NOW as a decimal string (microseconds), made when first needed
local ACK_BY_S      -- when a dispatch made in this call must be acknowledged (an argument)

-- Once per call: a batch lasts milliseconds, and one TIME per entry was one of its ~26
-- commands per alarm. Everything a call writes carries the time it started.
local function clock()
  local t = redis.call('TIME')
  NOW = tonumber(t[1]) + tonumber(t[2]) / 1e6
  NOW_S, ACK_BY_S = nil, nil
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

-- A number as redis.call would send it (it formats each number argument with %.17g, a
-- tenth of a call's cost): numbers used on every alarm are formatted once, by these.
local function A(x) return string.format('%.17g', x) end

-- The place of an alarm or incident as command arguments, formatted once.
local function at(x)
  local lon = x.lon_s
  if not lon then lon = A(x.lon); x.lon_s = lon; x.lat_s = A(x.lat) end
  return lon, x.lat_s
end
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
-- the current call: its zone's keys, settings and counters

local function zone_keys(prefix)
  local k = K_OF[prefix]
  if k then return k end
  k = {}
  for name, v in pairs(GLOBAL) do k[name] = v end
  for name, v in pairs(ZONED) do
    if type(v) == 'table' then k[name] = {prefix .. v[1], v[2]}
    else k[name] = prefix .. v end
  end
  k.ANNOUNCED = {k.UNIT_NOTIFY, k.INCIDENT_NOTIFY, k.UNIT_CHANGES}  -- publish_announcements
  K_OF[prefix] = k
  return k
end

-- The free units' set. Its size is asked once per call (find_unit asks before searching),
-- then followed through the call's own changes, which all go through free_add/free_remove.
local FREE_N

local function free_count()
  if not FREE_N then FREE_N = redis.call('ZCARD', K.UNITS_FREE_GEO) end
  return FREE_N
end

local function free_add(lon, lat, u)
  local n = redis.call('GEOADD', K.UNITS_FREE_GEO, lon, lat, u)
  if FREE_N then FREE_N = FREE_N + n end
end

-- Units taken off the free set by the current call, in order: the reply names them, so a
-- replica's copy of the free set (dispatcher/freeunits.py) stops listing them.
local LEFT_FREE

local function free_remove(u)
  local n = redis.call('ZREM', K.UNITS_FREE_GEO, u)
  if FREE_N then FREE_N = FREE_N - n end
  if n == 1 then LEFT_FREE[#LEFT_FREE + 1] = u end
end

-- Incident numbers: the first incident a call creates reserves `SEQ_WANT` numbers (one per
-- entry of the batch: enough) with one INCRBY; result() gives back the unused ones. A call
-- that fails in between leaves a gap in the numbers, never a number used twice.
local SEQ_NEXT, SEQ_TOP, SEQ_WANT

local function next_incident_number()
  if not SEQ_NEXT or SEQ_NEXT > SEQ_TOP then
    SEQ_TOP = redis.call('INCRBY', K.INCIDENT_SEQ, SEQ_WANT)
    SEQ_NEXT = SEQ_TOP - SEQ_WANT + 1
  end
  local n = SEQ_NEXT
  SEQ_NEXT = n + 1
  return n
end

-- Announcements: one PUBLISH per channel and call, its payload the ids (units whose inbox
-- got an entry, incidents that changed, units whose record changed) separated by single
-- spaces, in messages of at most
-- ANNOUNCE_MAX ids (ids never hold a space: wire.Ident). A subscriber splits the payload; the
-- inbox stream and the incident hash stay the truth (what a subscriber missed while it
-- reconnected, it reads there).
local ANNOUNCE_MAX = 500
local ANNOUNCE      -- channel -> the ids to announce there, in order (and [id] = true)

local function announce(channel, id)
  local ids = ANNOUNCE[channel]
  if not ids then ids = {}; ANNOUNCE[channel] = ids end
  if not ids[id] then ids[id] = true; ids[#ids + 1] = id end
end

-- A unit's record (duty, status) changed in this call. Readers that follow the patrol stream
-- (the console's live feed) see a duty entry before this call applies it: the announcement,
-- sent when the call's writes are done, tells them to read the unit again.
local function unit_changed(u) announce(K.UNIT_CHANGES, u) end

local function publish_announcements()
  for _, channel in ipairs(K.ANNOUNCED) do
    local ids = ANNOUNCE[channel]
    if ids then
      for first = 1, #ids, ANNOUNCE_MAX do
        redis.call('PUBLISH', channel,
                   table.concat(ids, ' ', first, math.min(first + ANNOUNCE_MAX - 1, #ids)))
      end
    end
  end
  ANNOUNCE = {}
end

-- Per call, not per entry: the open-incident and ack-deadline sorted sets get one ZADD each
-- when the call ends (result), with what it added and did not take back meanwhile. Nothing
-- in a call reads them but to take back what it added itself (deadline_remove answers that).
local OPENED        -- incidents created in this call: [i] = id, [id] = still open
local DEADLINES     -- ack deadlines set in this call: [i] = member, [member] = still set

local function opened(id) OPENED[#OPENED + 1] = id; OPENED[id] = true end

local function deadline_add(member) DEADLINES[#DEADLINES + 1] = member; DEADLINES[member] = true end

-- Take an incident off the open set; 1 if it was there.
local function open_remove(id)
  if OPENED[id] then OPENED[id] = false; return 1 end
  return redis.call('ZREM', K.INCIDENTS_OPEN, id)
end

-- Take a dispatch's ack deadline away; 1 if it was set (the dispatch awaited an ack).
local function deadline_remove(member)
  if DEADLINES[member] then DEADLINES[member] = false; return 1 end
  return redis.call('ZREM', K.ACK_DEADLINES, member)
end

local function zadd_kept(set, list, score)
  local args, seen = {}, {}
  for _, m in ipairs(list) do
    if list[m] and not seen[m] then
      seen[m] = true
      args[#args + 1] = score; args[#args + 1] = m
      if #args >= 1000 then redis.call('ZADD', set, unpack(args)); args = {} end
    end
  end
  if #args > 0 then redis.call('ZADD', set, unpack(args)) end
end

local function begin(settings)
  C = cmsgpack.unpack(settings)
  S = {radii = {}}
  for name, v in pairs(C) do if type(v) == 'number' then S[name] = A(v) end end
  for i, r in ipairs(C.radii) do S.radii[i] = A(r) end
  K = zone_keys(C.prefix)
  STATS, TYPES, FREED, TIMELINE, TOUCHED = {}, {}, {}, {}, {}
  RANK, RANKS, FLAT = nil, {}, nil
  FREE_N, SEQ_NEXT, SEQ_TOP, SEQ_WANT = nil, nil, nil, 1
  ANNOUNCE, OPENED, DEADLINES, LEFT_FREE = {}, {}, {}, {}
  for _, n in ipairs(STAT_NAMES) do STATS[n] = 0 end
  clock()
end

local function result()
  if #OPENED > 0 then zadd_kept(K.INCIDENTS_OPEN, OPENED, now_s()) end
  if #DEADLINES > 0 then zadd_kept(K.ACK_DEADLINES, DEADLINES, ACK_BY_S) end
  publish_announcements()
  if SEQ_NEXT and SEQ_NEXT <= SEQ_TOP then
    redis.call('SET', K.INCIDENT_SEQ, SEQ_NEXT - 1)  -- the numbers reserved and not used
  end
  local out = {}
  for i, n in ipairs(STAT_NAMES) do out[i] = STATS[n] end
  out[#STAT_NAMES + 1] = LEFT_FREE  -- then the units the call took off the free set
  return out
end
