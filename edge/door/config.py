"""The door agent's configuration: its settings and one table per door (TOML).

::

    redis_url = "redis://edge:secret@127.0.0.1:6379/0"
    city = "shenzhen"

    [door_agent]
    http_port = 8470
    tcp_port = 8471
    spool_dir = "/var/lib/polewatch/door-spool"

    [[doors]]
    id = "D-0042"
    controller = "ctl-7"
    pole = "1234567"          # resolved in the pole registry, or give lon/lat
    held_open_s = 30

    [[controllers]]           # optional: ids referenced by doors get the defaults
    id = "ctl-7"
    offline_s = 60
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from polewatch import settings
from polewatch.poles.model import Pole
from polewatch.wire import Ident, Lat, Lon, PoleRef

Seconds = Annotated[float, Meta(gt=0.0, le=86400.0)]
DoorId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@#/-]+$")]
"""Short enough that an alarm id built from it stays a valid wire identifier."""


class Door(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One door: where it is, which controller drives it, and its rule thresholds."""

    id: DoorId
    controller: DoorId
    pole: PoleRef | None = None
    lon: Lon | None = None
    lat: Lat | None = None
    district: str | None = None
    grid: Ident | None = None
    held_open_s: Seconds = 30.0
    """Open longer than this: ``door_held``."""
    unlock_s: Seconds = 8.0
    """A grant or exit request lets the door open within this long; otherwise ``door_forced``."""
    denied_burst: Annotated[int, Meta(ge=1)] = 3
    denied_window_s: Seconds = 30.0
    """``denied_burst`` denials at one reader within this window: ``invalid_card_burst``."""
    infer_forced: bool = True
    """Treat ``door_opened`` with no grant or exit request just before it as forced (turn off
    for controllers that do not report exit-button presses)."""
    anti_passback: bool = True
    tailgating: bool = True
    crossing_grace_s: Seconds = 3.0
    """Crossings reported this long after the door closed still count (camera latency)."""
    cooldown_s: Annotated[float, Meta(ge=0.0)] = 60.0
    """Same alarm type at the same door within this long: suppressed (counted)."""


class Controller(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    id: DoorId
    offline_s: Seconds = 60.0
    """No event or heartbeat for this long: ``controller_offline``."""


class OsdpReader(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An OSDP reader on an RS-485 port, feeding one door (see :mod:`edge.door.osdp`)."""

    door: DoorId
    port: str
    address: Annotated[int, Meta(ge=0, le=126)]
    baud: int = 9600
    scbk: Annotated[str, Meta(pattern=r"^[0-9a-fA-F]{32}$")] | None = None
    cards: list[str] = []
    contact_input: Annotated[int, Meta(ge=0)] | None = 0
    """Input number wired to the door contact (1 = open); ``None``: no contact."""


class DoorSettings(settings.Settings, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Ident = "door-agent"
    http_host: str = "127.0.0.1"
    http_port: Annotated[int, Meta(ge=-1, le=65535)] = 8470
    """Webhook port (0: any free port, -1: no webhook)."""
    tcp_port: Annotated[int, Meta(ge=-1, le=65535)] = 8471
    """JSON-lines port (0: any free port, -1: no TCP intake)."""
    spool_dir: str = ""
    """Store-and-forward directory ('' keeps the spool in memory only)."""
    heartbeat_s: Seconds = 10.0
    tick_s: Seconds = 0.5
    """How often time-based rules (held open, offline, tailgating) are evaluated."""
    doors: list[Door] = []
    controllers: list[Controller] = []
    osdp: list[OsdpReader] = []


def load(path: str | Path | None = None, **overrides: Any) -> DoorSettings:
    """Read and check the configuration; :class:`settings.SettingsError` names what is wrong."""
    conf = settings.load(DoorSettings, section="door_agent", config_file=path, overrides=overrides)
    check(conf)
    return conf


def check(conf: DoorSettings) -> None:
    if not conf.doors:
        raise settings.SettingsError("no [[doors]] configured")
    seen: set[str] = set()
    for door in conf.doors:
        if door.id in seen:
            raise settings.SettingsError(f"doors: door id {door.id!r} appears twice")
        seen.add(door.id)
        if door.pole is None and (door.lon is None or door.lat is None):
            raise settings.SettingsError(f"doors: door {door.id!r} needs 'pole' or 'lon'+'lat'")
    for reader in conf.osdp:
        if reader.door not in seen:
            raise settings.SettingsError(
                f"osdp: reader {reader.address} names unknown door {reader.door!r}"
            )


def controllers(conf: DoorSettings) -> dict[str, Controller]:
    """Every controller a door names, with the configured settings or the defaults."""
    out = {c.id: c for c in conf.controllers}
    for door in conf.doors:
        out.setdefault(door.controller, Controller(id=door.controller))
    return out


async def locate(doors: list[Door], lookup: Callable[[str], Awaitable[Pole | None]]) -> list[Door]:
    """Doors with lon/lat (and district/grid where missing) filled in from their pole."""
    out = []
    for door in doors:
        if door.lon is not None and door.lat is not None:
            out.append(door)
            continue
        assert door.pole is not None
        pole = await lookup(door.pole)
        if pole is None:
            raise settings.SettingsError(
                f"doors: door {door.id!r}: pole {door.pole!r} is not in the registry"
            )
        out.append(
            msgspec.structs.replace(
                door,
                lon=pole.lon,
                lat=pole.lat,
                district=door.district or pole.district,
                grid=door.grid or pole.grid,
            )
        )
    return out
