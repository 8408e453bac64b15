"""The command centre's settings: the ``console`` table of the gateway's settings
(``[gateway.console]`` in the config file, ``POLEWATCH_CONSOLE`` as JSON in the environment).

    [gateway.console.users.ada]
    role = "supervisor"
    password = "scrypt$16384$8$1$<salt>$<hash>"   # polewatch console-user ada --role supervisor
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Login = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.@-]+$")]


class Account(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One command-centre login: its role and its password hash (never the password)."""

    role: Literal["operator", "supervisor"] = "operator"
    password: str
    """``scrypt$N$r$p$salt$hash`` (base64), as :func:`gateway.console.accounts.hash_password`
    writes it."""


Seconds = Annotated[float, Meta(gt=0)]


class LoginLimits(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Console login throttling (``[gateway.console.login]``), see
    :mod:`gateway.console.lockout`."""

    account_free: Annotated[int, Meta(ge=1)] = 5
    """Attempts on one account before the backoff starts."""
    address_free: Annotated[int, Meta(ge=1)] = 20
    """Attempts from one address (any accounts) before the backoff starts."""
    backoff_s: Seconds = 1.0
    """The first lock; each further attempt that gets through doubles it ..."""
    backoff_max_s: Seconds = 900.0
    """... up to this."""
    window_s: Seconds = 900.0
    """A subject's count is forgotten this long after its last attempt."""


class ConsoleSettings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Who may log in to the command centre, and how its map is drawn."""

    users: dict[Login, Account] = {}
    tile_url: str = ""
    """Optional raster tiles under the map, e.g. ``https://tiles.example/{z}/{x}/{y}.png``
    (empty: the map draws districts, grids and poles from the project's own data only)."""
    map_center: tuple[float, float] = (114.06, 22.56)
    """Where the map opens (lon, lat): Shenzhen by default."""
    map_zoom: float = 11.0
    dispatch_alert_s: Seconds = 10.0
    """Every console warns while an alarm, a patrol answer or an operator's command has waited
    longer than this for a dispatcher (see :mod:`gateway.console.backlog`)."""
    dispatch_check_s: Seconds = 2.0
    """How often a gateway process with consoles open checks that."""
    utc_offset_min: int | None = None
    """Local time of the report pages and exports as a fixed offset, minutes east of UTC
    (Shenzhen: 480); unset: the gateway's ``timezone`` setting."""
    sender: str = "polewatch@localhost"
    """The exporting system's name in CAP / EIDO exports."""
    agency: str = "polewatch command centre"
    login: LoginLimits = LoginLimits()
    """Lockout with backoff of failed logins, per account and per address."""
