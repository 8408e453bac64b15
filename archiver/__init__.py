"""The incident archive: closed incidents move from Redis to PostgreSQL/PostGIS.

:mod:`archiver.service` is ``polewatch archiver``: a consumer group on every zone's audit
stream that writes each incident once it is closed, cancelled or merged (again when it is
reopened or amended) with upserts keyed by incident, event and stream ids, then gives the
incident's Redis keys their retention time. :mod:`archiver.schema` applies the numbered SQL
files of ``migrations/``; :mod:`archiver.writer` is the bulk upsert; ``analytics.archive``
reads the archive back.
"""
