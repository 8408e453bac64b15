-- An incident's revision is the length of its timeline when it was archived. The timeline only
-- grows (every change the dispatcher makes to an incident appends to it), so a copy with a
-- shorter timeline is older: two archiver processes (or two consumers) that read the same
-- incident at different moments may commit in either order, and the upsert keeps the newer.
ALTER TABLE incident ADD COLUMN IF NOT EXISTS revision integer NOT NULL DEFAULT 0;

-- The command centre's history: finished incidents, newest finish first (the finish is the
-- time of the event named like the state; analytics/archive.py's _FINISHED orders by exactly
-- this expression), so a page is read from the index instead of sorting the whole archive.
CREATE INDEX IF NOT EXISTS incident_finished ON incident
    ((COALESCE((times ->> state)::float8, created)) DESC, (id COLLATE "C") DESC);
