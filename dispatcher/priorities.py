"""The alarm-type table: how urgent each kind of alarm is, which reports merge, who must go.

Every type has a priority (1 = P1, most urgent), a merge group (alarms of one group at the same
place within the window join one incident), a merge radius and window, how many units it wants
and an optional capability a unit must have. Unknown types get the ``*`` entry, in a merge group
of their own. Deployments override or add entries in the settings file::

    [dispatcher.types.intrusion]
    priority = 1
    radius_m = 120
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Final

import msgspec
from msgspec import Meta

DEFAULT_TYPE: Final = "*"
"""Key of the entry used for alarm types the table does not name."""


class AlarmType(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the dispatcher treats one alarm type."""

    priority: Annotated[int, Meta(ge=1, le=4)]
    group: str = ""
    """Merge group; empty: the type's own name."""
    radius_m: Annotated[float, Meta(gt=0, le=10_000)] = 80.0
    window_s: Annotated[float, Meta(ge=0, le=86_400)] = 600.0
    units: Annotated[int, Meta(ge=1, le=10)] = 1
    capability: str = ""
    """A unit must list this capability to be sent; empty: any unit."""


class AlarmTypePatch(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A settings-file entry: any subset of :class:`AlarmType`'s fields."""

    priority: Annotated[int, Meta(ge=1, le=4)] | None = None
    group: str | None = None
    radius_m: Annotated[float, Meta(gt=0, le=10_000)] | None = None
    window_s: Annotated[float, Meta(ge=0, le=86_400)] | None = None
    units: Annotated[int, Meta(ge=1, le=10)] | None = None
    capability: str | None = None


def _t(priority: int, group: str, **kw: float | int | str) -> AlarmType:
    return AlarmType(priority=priority, group=group, **kw)  # type: ignore[arg-type]


DEFAULTS: Final[Mapping[str, AlarmType]] = {
    # people asking for help: the most urgent, and a citizen in danger gets two units
    "citizen_sos": _t(1, "citizen", units=2),
    "call": _t(2, "citizen", radius_m=150.0),
    # video analytics: one intruder is seen by several cameras and rules
    "intrusion": _t(2, "intrusion"),
    "tripwire": _t(2, "intrusion"),
    "loitering": _t(3, "loitering", radius_m=120.0),
    "crowd": _t(2, "crowd", radius_m=200.0, window_s=900.0),
    "tamper": _t(3, "camera"),
    # a camera's motion rule (any movement where none is expected) and a vehicle left in a
    # no-parking zone: someone should look, nobody is in danger yet
    "motion": _t(3, "intrusion", radius_m=100.0),
    "no_parking": _t(4, "traffic", window_s=1800.0),
    "camera_offline": _t(4, "camera", window_s=3600.0),
    # access control: doors and readers of one entrance
    "door_forced": _t(2, "door"),
    "door_tamper": _t(2, "door"),
    "door_held": _t(3, "door"),
    "invalid_card_burst": _t(3, "access"),
    "tailgating": _t(3, "access"),
    "anti_passback": _t(4, "access"),
    "controller_offline": _t(4, "device", window_s=3600.0),
    DEFAULT_TYPE: _t(3, ""),
}


class PriorityTable:
    """The effective table: the defaults with the settings' patches applied."""

    def __init__(self, patches: Mapping[str, AlarmTypePatch] | None = None) -> None:
        table = dict(DEFAULTS)
        for name, patch in (patches or {}).items():
            base = table.get(name, table[DEFAULT_TYPE])
            changes = {k: v for k, v in msgspec.structs.asdict(patch).items() if v is not None}
            table[name] = msgspec.structs.replace(base, **changes)
        self.types: dict[str, AlarmType] = table

    def __getitem__(self, alarm_type: str) -> AlarmType:
        return self.types.get(alarm_type) or self.types[DEFAULT_TYPE]

    def group(self, alarm_type: str) -> str:
        """The merge group of an alarm type."""
        return self[alarm_type].group or alarm_type

    def packed(self) -> dict[str, bytes]:
        """The table as stored in ``keys.DISPATCH_TYPES`` for the Redis functions."""
        return {name: msgspec.msgpack.encode(t) for name, t in self.types.items()}
