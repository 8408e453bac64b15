-- The five response-time figures of each incident, computed once when it is archived (by
-- analytics.response_times.IncidentTimes.durations, the very function the Redis readers use),
-- so a quarter's percentiles are one GROUPING SETS pass over plain columns.
ALTER TABLE incident
    ADD COLUMN alarm_to_dispatch double precision,
    ADD COLUMN dispatch_to_ack double precision,
    ADD COLUMN ack_to_scene double precision,
    ADD COLUMN alarm_to_scene double precision,
    ADD COLUMN resolution double precision;

-- Incidents archived before this migration: the same definitions in SQL.
WITH t AS (
    SELECT id, created,
        CASE WHEN alarm_ts > '-Infinity' AND alarm_ts <= created THEN alarm_ts ELSE created END
            AS s0,
        (times ->> 'dispatched')::float8 AS td, (times ->> 'acknowledged')::float8 AS ta,
        (times ->> 'on_scene')::float8 AS tsc, (times ->> 'resolved')::float8 AS tr
    FROM incident
)
UPDATE incident SET
    alarm_to_dispatch = CASE WHEN t.td >= t.s0 THEN round((t.td - t.s0)::numeric, 3) END,
    dispatch_to_ack = CASE WHEN t.ta >= t.td THEN round((t.ta - t.td)::numeric, 3) END,
    ack_to_scene = CASE WHEN t.tsc >= t.ta THEN round((t.tsc - t.ta)::numeric, 3) END,
    alarm_to_scene = CASE WHEN t.tsc >= t.s0 THEN round((t.tsc - t.s0)::numeric, 3) END,
    resolution = CASE WHEN t.tr >= t.created THEN round((t.tr - t.created)::numeric, 3) END
FROM t WHERE incident.id = t.id;
