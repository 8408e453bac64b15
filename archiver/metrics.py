"""The archiver's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class Metrics:
    """The archiver's Prometheus metrics (its own registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.archived = Counter(
            "polewatch_archiver_incidents_total", "Incidents written to the archive",
            registry=self.registry,
        )  # fmt: skip
        self.entries = Counter(
            "polewatch_archiver_audit_entries_total", "Audit entries archived",
            registry=self.registry,
        )  # fmt: skip
        self.deadletters = Counter(
            "polewatch_archiver_dead_letters_total", "Audit entries dead-lettered",
            registry=self.registry,
        )  # fmt: skip
        self.lag = Gauge(
            "polewatch_archiver_lag_entries", "Audit entries not yet read by the archivers",
            ["zone"], registry=self.registry,
        )  # fmt: skip
        self.db_errors = Counter(
            "polewatch_archiver_database_errors_total", "Batches the database refused",
            registry=self.registry,
        )  # fmt: skip
