"""Prometheus metrics of a dispatcher replica (its own registry, so tests can make many)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

from polewatch.operations import StateCollector

_COUNTERS = {
    "alarms": ("polewatch_dispatcher_alarms_total", "Alarms processed"),
    "duplicates": ("polewatch_dispatcher_duplicate_alarms_total", "Alarms seen before"),
    "incidents": ("polewatch_dispatcher_incidents_total", "Incidents created"),
    "merged": ("polewatch_dispatcher_merged_alarms_total", "Alarms merged into an incident"),
    "dispatched": ("polewatch_dispatcher_dispatches_total", "Dispatches sent to units"),
    "escalated": ("polewatch_dispatcher_escalations_total", "Incidents escalated"),
    "expired": ("polewatch_dispatcher_ack_timeouts_total", "Dispatches not acknowledged"),
    "patrol": ("polewatch_dispatcher_patrol_events_total", "Patrol events processed"),
    "commands": ("polewatch_dispatcher_commands_total", "Operator commands processed"),
    "deadletter": ("polewatch_dispatcher_dead_letters_total", "Entries dead-lettered"),
}


class Metrics:
    """Counters named after the functions' counters, the batch latency histogram, and the
    deployment's operational state (:mod:`polewatch.operations`, read by the replica)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.counters = {
            key: Counter(name, doc, registry=self.registry)
            for key, (name, doc) in _COUNTERS.items()
        }
        self.batch_seconds = Histogram(
            "polewatch_dispatcher_batch_seconds",
            "Time to process one batch (decode, FCALL, dead letters)",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.state = StateCollector()
        self.registry.register(self.state)

    def record(self, counts: dict[str, int]) -> None:
        for key, value in counts.items():
            counter = self.counters.get(key)
            if counter is not None and value:
                counter.inc(value)

    def serve(self, port: int, addr: str = "127.0.0.1") -> Callable[[], None]:
        """Expose ``/metrics`` on ``addr:port`` (a daemon thread; loopback unless told
        otherwise); returns the function that stops it."""
        server, thread = start_http_server(port, addr=addr, registry=self.registry)

        def close() -> None:
            server.shutdown()
            server.server_close()
            thread.join(5)

        return close
