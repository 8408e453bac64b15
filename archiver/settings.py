"""Settings of ``polewatch archiver`` (section ``[archiver]``; the database from plain
``DATABASE_URL`` or ``POLEWATCH_DATABASE_URL``)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from polewatch.settings import Settings, check_database_url

Positive = Annotated[int, msgspec.Meta(gt=0)]


class ArchiverSettings(Settings, frozen=True, kw_only=True):
    """Where the archive is, how long archived incidents stay in Redis, how to consume."""

    database_url: str = ""
    """The archive (``DATABASE_URL``); ``polewatch archiver`` refuses to start without it."""
    retention_s: Positive = 7 * 86_400
    """How long an archived closed incident, its timeline, alarm list and alarm bodies stay in
    Redis after the archive confirmed them."""
    consumer: str = ""
    """Consumer name in the ``archivers`` group, unique per replica; empty: ``<hostname>-<pid>``
    (:func:`polewatch.settings.consumer_name`)."""
    batch: Positive = 2000
    """Audit entries read per round and written in one transaction."""
    block_ms: Positive = 1000
    claim_idle_ms: Positive = 30_000
    """Entries another archiver left pending this long are taken over (it crashed)."""
    forget_idle_ms: Positive = 3_600_000
    """A consumer of the group that holds no pending entries and was idle this long (a replica
    stopped, or restarted under a new name) is deleted from the group (looked for with the
    takeovers). A replica alive reads every ``block_ms`` and comes back if deleted."""
    metrics_addr: str = "127.0.0.1"
    """Address of the Prometheus endpoint (``metrics_port``): loopback unless told."""
    drain_s: float = 10.0
    """On SIGTERM, how long the batches in hand may take before they are cancelled."""
    retry_s: float = 1.0
    """Pause before retrying a batch the database refused (it is down, restarting)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_database_url(self.database_url)
