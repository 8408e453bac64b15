-- The incident archive: closed, cancelled and merged incidents with their timeline, their
-- alarms and the audit trail, written by `polewatch archiver`. Times are Unix seconds
-- (double precision), exactly as the dispatcher stores them in Redis, so figures computed
-- from the archive equal those computed from Redis.
CREATE EXTENSION IF NOT EXISTS postgis;

CREATE TABLE incident (
    id          text PRIMARY KEY,
    zone        text NOT NULL DEFAULT '',
    state       text NOT NULL,
    priority    smallint NOT NULL,
    type        text NOT NULL,
    merge_group text NOT NULL,
    created     double precision NOT NULL,
    alarm_ts    double precision,
    reports     integer NOT NULL DEFAULT 1,
    wanted      smallint NOT NULL DEFAULT 1,
    pole        text,
    district    text,
    grid        text,
    text        text,
    units       text[] NOT NULL DEFAULT '{}',
    first_alarm text,
    evaluation  smallint,
    merged_into text,
    times       jsonb NOT NULL DEFAULT '{}',
    geom        geometry(Point, 4326) NOT NULL,
    archived_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON COLUMN incident.units IS 'every unit named in the timeline';
COMMENT ON COLUMN incident.times IS 'event -> first time it happened (from the timeline)';

-- Period scans (response times, assessment, CSV): by creation time, or district then time.
-- INCLUDE makes them index-only for the assessment's columns.
CREATE INDEX incident_created ON incident (created)
    INCLUDE (id, type, priority, state, district, grid, pole, alarm_ts, reports);
CREATE INDEX incident_district_created ON incident (district, created);
CREATE INDEX incident_geom ON incident USING gist (geom);

CREATE TABLE incident_event (
    incident text NOT NULL REFERENCES incident (id) ON DELETE CASCADE,
    seq      integer NOT NULL,
    event    text NOT NULL,
    ts       double precision NOT NULL,
    unit     text,
    alarm    text,
    actor    text,
    detail   text,
    priority smallint,
    reports  integer,
    PRIMARY KEY (incident, seq)
);

CREATE TABLE alarm (
    id       text PRIMARY KEY,
    incident text NOT NULL REFERENCES incident (id) ON DELETE CASCADE,
    seq      integer NOT NULL,
    type     text,
    source   text,
    ts       double precision,
    pole     text,
    district text,
    grid     text,
    text     text,
    geom     geometry(Point, 4326),
    body     bytea
);
COMMENT ON COLUMN alarm.body IS 'the alarm as MessagePack (NULL: its body had expired in Redis)';
CREATE INDEX alarm_incident ON alarm (incident, seq);

CREATE TABLE audit (
    zone     text NOT NULL,
    entry_id text NOT NULL,
    incident text NOT NULL,
    event    text NOT NULL,
    ts       double precision NOT NULL,
    body     bytea NOT NULL,
    PRIMARY KEY (zone, entry_id)
);
COMMENT ON TABLE audit IS 'every decodable entry of the audit stream(s), keyed by stream id';
-- No secondary indexes: the trail is written at the stream's pace and read rarely (an
-- incident's own history is incident_event); add one when a query needs it.
