"""The door rules: pure functions of the events fed in and the time passed in.

:class:`DoorRules` holds each door's and controller's state; :meth:`DoorRules.event` takes one
decoded event, :meth:`DoorRules.tick` the passing of time (held open, controller offline,
tailgating once the crossings of an opening are in). Both return the alarms to raise as
geolocated :class:`~polewatch.wire.Alarm`. Nothing here reads a clock or does I/O, so a test
plays a scenario with chosen timestamps and checks the exact alarms.

Times: an event's own ``ts`` (controller clock) orders the door's story; ``now`` (the agent's
clock) drives the time-based rules. Controllers without a synchronised clock should leave
``ts`` out; the agent then stamps events on arrival.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

from edge.door.config import Controller, Door
from edge.door.events import Direction, DoorEvent
from polewatch import wire

TYPES: Final = (
    "door_forced",
    "door_held",
    "invalid_card_burst",
    "anti_passback",
    "tailgating",
    "door_tamper",
    "controller_offline",
)
"""Every alarm type this agent raises."""

HORIZON_S: Final = 600.0
"""Grants and crossings older than this are forgotten."""


@dataclass
class _DoorState:
    open_since: float | None = None
    held_raised: bool = False
    authorised_until: float = -math.inf
    grants: deque[float] = field(default_factory=deque)
    crossings: deque[float] = field(default_factory=deque)
    openings: list[tuple[float, float]] = field(default_factory=list)
    """Closed openings waiting for late crossings before the tailgating check."""
    denials: dict[str, deque[float]] = field(default_factory=dict)
    passback: dict[str, Direction] = field(default_factory=dict)
    last_alarm: dict[str, float] = field(default_factory=dict)


@dataclass
class _ControllerState:
    last_seen: float
    offline: bool = False


class DoorRules:
    """State and rules of a set of doors and their controllers."""

    def __init__(
        self, doors: Sequence[Door], controllers: Mapping[str, Controller], *, start: float
    ) -> None:
        for door in doors:
            if door.lon is None or door.lat is None:
                raise ValueError(f"door {door.id!r} has no location (resolve its pole first)")
        self.doors = {d.id: d for d in doors}
        self.controllers = dict(controllers)
        self._doors = {d.id: _DoorState() for d in doors}
        self._ctl = {c: _ControllerState(last_seen=start) for c in self.controllers}
        self.suppressed = 0
        """Alarms held back by a cooldown."""
        self.unknown = 0
        """Events naming a door or controller that is not configured."""

    # --- inputs ----------------------------------------------------------------------------
    def event(self, ev: DoorEvent, now: float) -> list[wire.Alarm]:
        """Feed one event received at ``now``; returns the alarms it raises."""
        ctl = self._ctl.get(ev.controller)
        if ctl is None:
            self.unknown += 1
            return []
        ctl.last_seen, ctl.offline = now, False
        if ev.event == "heartbeat":
            return []
        door = self.doors.get(ev.door or "")
        if door is None:
            self.unknown += 1
            return []
        if ev.event == "person_crossed":
            assert ev.direction is not None
            return self.person_crossed(door.id, ev.ts if ev.ts is not None else now, ev.direction)
        return self._door_event(door, self._doors[door.id], ev, ev.ts if ev.ts is not None else now)

    def person_crossed(self, door_id: str, ts: float, direction: Direction) -> list[wire.Alarm]:
        """A person crossed the door camera's line at ``ts`` (fed by the video agent).

        Only ``in`` crossings count against the cards granted; the tailgating check itself
        runs in :meth:`tick` once the opening has closed and the grace time has passed.
        """
        state = self._doors.get(door_id)
        if state is None:
            self.unknown += 1
        elif direction == "in":
            state.crossings.append(ts)
        return []

    def tick(self, now: float) -> list[wire.Alarm]:
        """Let time pass to ``now``; returns the alarms that time raised."""
        out: list[wire.Alarm] = []
        for door_id, state in self._doors.items():
            door = self.doors[door_id]
            if (
                state.open_since is not None
                and not state.held_raised
                and now - state.open_since >= door.held_open_s
            ):
                state.held_raised = True
                held = now - state.open_since
                out += self._raise(door, "door_held", now, f"door open for {held:.0f} s")
            out += self._tailgating(door, state, now)
        for ctl_id, ctl in self._ctl.items():
            limit = self.controllers[ctl_id].offline_s
            if not ctl.offline and now - ctl.last_seen >= limit:
                ctl.offline = True
                out += self._offline(ctl_id, now, now - ctl.last_seen)
        return out

    def offline(self) -> set[str]:
        """Controllers currently considered offline."""
        return {c for c, state in self._ctl.items() if state.offline}

    # --- rules -----------------------------------------------------------------------------
    def _door_event(
        self, door: Door, state: _DoorState, ev: DoorEvent, t: float
    ) -> list[wire.Alarm]:
        extra: dict[str, str | int | float | bool] = {"controller": ev.controller}
        if ev.reader:
            extra["reader"] = ev.reader
        match ev.event:
            case "card_granted" | "exit_request":
                state.authorised_until = max(state.authorised_until, t + door.unlock_s)
                if ev.event == "card_granted" and ev.direction != "out":
                    state.grants.append(t)
                return self._passback(door, state, ev, t, extra)
            case "door_opened":
                if state.open_since is not None:
                    return []
                state.open_since, state.held_raised = t, False
                if door.infer_forced and t > state.authorised_until:
                    text = "door opened without a card grant or exit request"
                    return self._raise(door, "door_forced", t, text, extra)
                return []
            case "door_closed":
                if state.open_since is not None and door.tailgating:
                    state.openings.append((state.open_since, t))
                state.open_since, state.authorised_until = None, -math.inf
                return []
            case "forced_open":
                if state.open_since is None:
                    state.open_since, state.held_raised = t, False
                return self._raise(door, "door_forced", t, "controller reports forced open", extra)
            case "held_open":
                state.held_raised = True
                return self._raise(door, "door_held", t, "controller reports held open", extra)
            case "card_denied":
                reader = ev.reader or door.id
                window = state.denials.setdefault(reader, deque())
                window.append(t)
                while window and window[0] <= t - door.denied_window_s:
                    window.popleft()
                if len(window) < door.denied_burst:
                    return []
                extra["denials"] = len(window)
                window.clear()
                text = f"{extra['denials']} denied cards within {door.denied_window_s:.0f} s"
                return self._raise(door, "invalid_card_burst", t, text, extra)
            case "tamper":
                return self._raise(door, "door_tamper", t, "tamper switch", extra)
            case "anti_passback":
                return self._raise(door, "anti_passback", t, "controller reports passback", extra)
        return []

    def _passback(
        self,
        door: Door,
        state: _DoorState,
        ev: DoorEvent,
        t: float,
        extra: dict[str, str | int | float | bool],
    ) -> list[wire.Alarm]:
        if not door.anti_passback or ev.card is None or ev.direction is None:
            return []
        last = state.passback.get(ev.card)
        state.passback[ev.card] = ev.direction
        if last != ev.direction:
            return []
        text = f"card used to go {ev.direction} twice without going {_other(ev.direction)}"
        return self._raise(door, "anti_passback", t, text, extra)

    def _tailgating(self, door: Door, state: _DoorState, now: float) -> list[wire.Alarm]:
        out: list[wire.Alarm] = []
        while state.openings and now >= state.openings[0][1] + door.crossing_grace_s:
            opened, closed = state.openings.pop(0)
            grace = door.crossing_grace_s
            people = sum(1 for c in state.crossings if opened - grace <= c <= closed + grace)
            cards = sum(1 for g in state.grants if opened - door.unlock_s <= g <= closed)
            if people > cards:
                text = f"{people} people went in on {cards} card(s)"
                extra: dict[str, str | int | float | bool] = {"people": people, "cards": cards}
                out += self._raise(door, "tailgating", now, text, extra)
        for seen in (state.crossings, state.grants):
            while seen and seen[0] < now - HORIZON_S:
                seen.popleft()
        return out

    def _offline(self, ctl_id: str, now: float, silent: float) -> list[wire.Alarm]:
        door = next(d for d in self.doors.values() if d.controller == ctl_id)
        text = f"controller {ctl_id} silent for {silent:.0f} s"
        extra: dict[str, str | int | float | bool] = {"controller": ctl_id}
        return self._raise(door, "controller_offline", now, text, extra, source=ctl_id)

    def _raise(
        self,
        door: Door,
        kind: str,
        ts: float,
        text: str,
        extra: dict[str, str | int | float | bool] | None = None,
        source: str | None = None,
    ) -> list[wire.Alarm]:
        state = self._doors[door.id]
        last = state.last_alarm.get(kind)
        if last is not None and ts - last < door.cooldown_s:
            self.suppressed += 1
            return []
        state.last_alarm[kind] = ts
        origin = f"controller:{source}" if source else f"door:{door.id}"
        assert door.lon is not None and door.lat is not None
        return [
            wire.Alarm(
                id=f"{origin}:{kind}:{round(ts * 1000)}",
                type=kind,
                source=origin,
                ts=ts,
                lon=door.lon,
                lat=door.lat,
                pole=door.pole,
                district=door.district,
                grid=door.grid,
                text=f"door {door.id}: {text}",
                extra={"door": door.id, **(extra or {})},
            )
        ]


def _other(direction: Direction) -> Direction:
    return "out" if direction == "in" else "in"
