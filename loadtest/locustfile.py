"""The polewatch load test: one locust user class per real client of the system.

* :class:`CitizenUser` raises pole alarms over HTTP (``POST /api/alarms``), looks at their
  status and opens a pole's help page.
* :class:`PatrolUser` is a unit holding the patrol WebSocket: on duty, reporting positions,
  acknowledging each dispatch and working it to resolved, so it is free again for the next.
  Its dispatches give the ``E2E alarm->dispatch`` statistic (see :mod:`loadtest.clients`).
* :class:`EdgeUser` is an edge agent (pole button, camera rule) appending alarms and
  heartbeats straight to the Redis streams (an alarm to its pole's zone's stream on a zoned
  deployment: ``--pw-zones``; ``--pw-redis-cluster`` for a Redis Cluster).
* :class:`ViewerUser` is a command-centre screen: incident queue and unit board refreshes,
  and the live status stream (Server-Sent Events) of a recent alarm.

Run it through ``polewatch loadtest`` (which starts the system, mints unit tokens and checks
the thresholds); the options below can also be given to plain ``locust -f``.
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import gevent
from locust import FastHttpUser, HttpUser, User, between, events, task
from locust.env import Environment

from loadtest.clients import PatrolSocket, StreamClient, report
from loadtest.population import CLASS_OF, DEFAULT_MIX, SHARED, PopulationError, parse_mix
from polewatch import keys, wire


@events.init_command_line_parser.add_listener  # type: ignore[untyped-decorator]
def _options(parser: Any) -> None:
    group = parser.add_argument_group("polewatch")
    group.add_argument(
        "--pw-redis-url",
        default="redis://127.0.0.1:6379/0",
        help="Redis of the system (edge agents write to it; poles are read)",
    )
    group.add_argument(
        "--pw-redis-cluster",
        action="store_true",
        help="--pw-redis-url names a node of a Redis Cluster",
    )
    group.add_argument(
        "--pw-zones", default="", help="the system's dispatch zones file (GeoJSON; empty: none)"
    )
    group.add_argument("--pw-city", default="shenzhen", help="pole registry to sample")
    group.add_argument("--pw-tokens", default="", help="file of 'UNIT TOKEN' lines")
    group.add_argument("--pw-operator-token-file", default="", help="the viewers' token")
    group.add_argument("--pw-mix", default=DEFAULT_MIX, help="citizen=4,patrol=6,edge=2,viewer=1")
    group.add_argument("--pw-workers", type=int, default=1, help="worker processes in the run")


@events.init.add_listener  # type: ignore[untyped-decorator]
def _weights(environment: Environment, **_: Any) -> None:
    """Apply the mix's weights to the user classes (the master decides the distribution)."""
    options = environment.parsed_options
    if options is None:
        return
    for name, weight in parse_mix(options.pw_mix).items():
        if weight > 0:  # classes of weight 0 are left off the command line
            globals()[CLASS_OF[name]].weight = weight


def _prepare(environment: Environment) -> None:
    """Load the pole sample and this process' unit tokens (the first user of a process)."""
    options = environment.parsed_options
    assert options is not None
    runner = environment.runner
    worker = int(getattr(runner, "worker_index", 0) or 0)
    SHARED.load(
        options.pw_redis_url,
        options.pw_city,
        options.pw_tokens or None,
        worker,
        options.pw_workers,
        cluster=options.pw_redis_cluster,
        zones=options.pw_zones,
    )


class CitizenUser(FastHttpUser):
    """A citizen at a pole: the Help button, then a look at the status."""

    wait_time = between(1.0, 3.0)
    weight = 4

    def on_start(self) -> None:
        _prepare(self.environment)

    @task(3)
    def raise_alarm(self) -> None:
        place = SHARED.place()
        with self.client.post(
            "/api/alarms",
            json={"pole": place.code, "text": "load test"},
            name="/api/alarms",
            catch_response=True,
        ) as resp:
            if resp.status_code == 202:
                SHARED.remember_alarm(resp.json()["alarm"])
                resp.success()
            else:
                resp.failure(f"{resp.status_code}: {(resp.text or '')[:200]}")

    @task(3)
    def alarm_status(self) -> None:
        alarm = SHARED.recent_alarm()
        if alarm is not None:
            self.client.get(f"/api/alarms/{alarm}", name="/api/alarms/{alarm}")

    @task(2)
    def help_page(self) -> None:
        self.client.get(f"/p/{SHARED.place().code}", name="/p/{code}")


class PatrolUser(User):
    """A patrol unit's phone: the WebSocket, positions, and every dispatch worked to resolved."""

    wait_time = between(2.0, 4.0)
    weight = 6

    def on_start(self) -> None:
        _prepare(self.environment)
        try:
            self.unit, token = SHARED.take_unit()
        except PopulationError as exc:
            report(
                events.request,
                request_type="WS",
                name="no unit token",
                response_time=0,
                response_length=0,
                exception=exc,
                context={},
            )
            self.stop()
            return
        start = SHARED.place()
        self.lon, self.lat = start.lon, start.lat
        self.socket = PatrolSocket(self.host or "", token, events.request, self._inbox)
        self.socket.connect()
        self.socket.send(
            "duty",
            {
                "type": "duty",
                "duty": "on_duty",
                "capabilities": ["patrol", "medic"],
                "lon": self.lon,
                "lat": self.lat,
            },
        )

    def on_stop(self) -> None:
        socket = getattr(self, "socket", None)
        if socket is not None:
            socket.send("duty", {"type": "duty", "duty": "off_duty"})
            gevent.sleep(0.2)
            socket.close()

    @task
    def position(self) -> None:
        self.lon += random.uniform(-0.0005, 0.0005)
        self.lat += random.uniform(-0.0005, 0.0005)
        self.socket.send(
            "position", {"type": "position", "lon": round(self.lon, 7), "lat": round(self.lat, 7)}
        )

    def _inbox(self, message: dict[str, Any]) -> None:
        if message.get("k") == "dispatch":
            gevent.spawn(self._work, str(message["incident"]))

    def _work(self, incident: str) -> None:
        """Acknowledge at once (a phone does it in seconds), then work it quickly to resolved
        so the unit is free again and the run keeps dispatching."""
        gevent.sleep(random.uniform(0.1, 0.5))
        self.socket.send("ack", {"type": "ack", "incident": incident})
        for action in ("en_route", "on_scene", "resolved"):
            gevent.sleep(random.uniform(0.3, 1.0))
            self.socket.send(action, {"type": "status", "incident": incident, "action": action})


class EdgeUser(User):
    """An edge agent (pole button or camera rule) appending alarms and heartbeats to Redis."""

    wait_time = between(0.5, 2.0)
    weight = 2

    def on_start(self) -> None:
        _prepare(self.environment)
        options = self.environment.parsed_options
        assert options is not None
        self.source = f"button:lt-{uuid.uuid4().hex[:10]}"
        self.client = StreamClient(
            options.pw_redis_url, events.request, self.source, cluster=options.pw_redis_cluster
        )
        self.place = SHARED.place()

    def on_stop(self) -> None:
        self.client.close()

    @task(1)
    def alarm(self) -> None:
        place = SHARED.place()
        message = wire.Alarm(
            id=uuid.uuid4().hex,
            type=random.choice(("intrusion", "button", "door_forced")),
            source=self.source,
            ts=time.time(),
            lon=place.lon,
            lat=place.lat,
            pole=place.code,
        )
        self.client.append(keys.zone(place.zone).alarms, message, "edge alarm")

    @task(3)
    def heartbeat(self) -> None:
        beat = wire.Heartbeat(
            source=self.source, kind="button", status="online", ts=time.time(), pole=self.place.code
        )
        self.client.append(keys.HEARTBEATS, beat, "edge heartbeat", maxlen=100_000)


class ViewerUser(HttpUser):
    """A command-centre screen: mostly holding the live feed (``/api/console/live``), now and
    then the incident queue, the unit board, or one alarm's status stream."""

    wait_time = between(1.0, 3.0)
    weight = 1
    hold_s = 15.0

    def on_start(self) -> None:
        _prepare(self.environment)
        options = self.environment.parsed_options
        assert options is not None
        token = SHARED.operator_token(options.pw_operator_token_file)
        self.client.headers["Authorization"] = f"Bearer {token}"

    @task(4)
    def live_feed(self) -> None:
        """Hold the live feed for ``hold_s``: timed to its first picture; the events that
        arrive while it is held are counted (``SSE live feed events``, in the size column)."""
        started = time.perf_counter()
        events_seen = 0
        name = "/api/console/live (picture)"
        with self.client.get(
            "/api/console/live", stream=True, name=name, catch_response=True, timeout=30
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"{resp.status_code}")
                return
            for line in resp.iter_lines():
                if line.startswith(b"event: picture"):
                    resp.success()
                elif line.startswith(b"event: "):
                    events_seen += 1
                if time.perf_counter() - started > self.hold_s:
                    break
            resp.close()
        report(
            events.request,
            request_type="SSE",
            name="live feed events (per hold)",
            response_time=(time.perf_counter() - started) * 1000,
            response_length=events_seen,
            exception=None,
            context={},
        )

    @task(2)
    def incident_queue(self) -> None:
        self.client.get("/api/incidents?limit=50", name="/api/incidents")

    @task(1)
    def unit_board(self) -> None:
        self.client.get("/api/units", name="/api/units")

    @task(1)
    def follow_alarm(self) -> None:
        """Hold an alarm's status stream until it ends or 10 s pass; timed to first event."""
        alarm = SHARED.recent_alarm()
        if alarm is None:
            return
        started = time.perf_counter()
        name = "/api/alarms/{alarm}/events (first event)"
        with self.client.get(
            f"/api/alarms/{alarm}/events", stream=True, name=name, catch_response=True, timeout=15
        ) as resp:
            if resp.status_code != 200:
                resp.failure(f"{resp.status_code}")
                return
            for line in resp.iter_lines():
                if line.startswith(b"event: status"):
                    resp.success()
                    break
                if time.perf_counter() - started > 10.0:
                    resp.failure("no status event within 10 s")
                    break
            resp.close()
