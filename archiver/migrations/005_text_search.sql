-- The command centre's history searches finished incidents by text (analytics/archive.py,
-- finished_incidents): a text found in the id, pole, type, district, grid or description, or
-- in the detail of the event that finished the incident, in any case (lower-cased by ICU).
-- Without an index a text found nowhere read every incident and its timeline (about 1 s at
-- 200,000 incidents). Trigram (pg_trgm) GIN indexes on exactly the lower-cased expressions
-- the query matches with LIKE give it the few candidates; the query still checks each
-- candidate field by field, so the joined fields below only need to hold every field.
-- pg_trgm is a trusted extension: a database owner without superuser may create it. Chinese
-- characters count as letters only where the database's LC_CTYPE is a UTF-8 locale (the
-- embedded cluster's is C.UTF-8); under LC_CTYPE C the index serves only the ASCII words and
-- other texts are searched correctly but by reading every row.
CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE INDEX IF NOT EXISTS incident_text_search ON incident USING gin ((lower(
    COALESCE(id, '') || E'\n' || COALESCE(pole, '') || E'\n' || COALESCE(type, '') || E'\n'
    || COALESCE(district, '') || E'\n' || COALESCE(grid, '') || E'\n' || COALESCE(text, '')
    COLLATE "und-x-icu")) gin_trgm_ops);

CREATE INDEX IF NOT EXISTS incident_event_detail_search ON incident_event USING gin
    ((lower(detail COLLATE "und-x-icu")) gin_trgm_ops) WHERE detail IS NOT NULL;
