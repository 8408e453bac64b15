"""Settings: one frozen object per service, built once at start.

Sources, later ones winning: the defaults in the class, a TOML config file (top-level keys are
shared, a ``[section]`` table is the service's own), then the environment (``POLEWATCH_<KEY>``;
the Redis URL is also read from plain ``REDIS_URL``, a ``database_url`` setting from
plain ``DATABASE_URL``). A missing, unknown or invalid value
raises :class:`SettingsError` naming the key and where it came from. Nothing else in polewatch
reads ``os.environ``.
"""

from __future__ import annotations

import functools
import os
import re
import socket
import tomllib
import zoneinfo
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec

from polewatch import i18n
from polewatch.zones import ZoneError, ZoneMap

ENV_PREFIX = "POLEWATCH_"
CONFIG_ENV = "POLEWATCH_CONFIG"


class SettingsError(Exception):
    """A setting is missing or invalid; the message names the key."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Settings every service shares."""

    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_cluster: bool = False
    """``redis_url`` names a node of a Redis Cluster (then ``zones`` should be set, so the
    work spreads over the shards)."""
    zones: str = ""
    """A GeoJSON file of the dispatch zones (see :mod:`polewatch.zones`); empty: one zone.
    Every service of a deployment must be given the same file."""
    log_level: str = "INFO"
    city: str = "shenzhen"
    """Name of the pole registry the service works in."""
    metrics_port: int = 0
    """Port of the Prometheus endpoint (0: none, or served by the service's own HTTP app)."""
    timezone: str = "Asia/Shanghai"
    """The city's time zone (IANA name): every time a person reads is shown in it; storage
    stays in UTC."""
    language: str = "zh-CN"
    """The city's own language: pages use it when the browser asks for none we have
    (``zh-CN`` or ``en``); reports and plates default to it."""

    def __post_init__(self) -> None:
        _check_locale(self.timezone, self.language)
        # Fail at start, naming the key: an unreadable zones file, or a cluster without zones
        # (the default zone's keys are spread over the slots: its atomic steps would fail).
        self.zone_map()
        if self.redis_cluster and not self.zones:
            raise ValueError(
                "redis_cluster: a Redis Cluster needs dispatch zones; set 'zones' to a GeoJSON "
                "file of them (e.g. the city's districts)"
            )

    def zone_map(self) -> ZoneMap:
        """The deployment's dispatch zones (loaded once per file)."""
        return _zone_map(self.zones)

    def utc_offset_at(self, at: float) -> int:
        """Minutes east of UTC of the city's local time (``timezone``) at Unix time ``at``."""
        offset = datetime.fromtimestamp(at, zoneinfo.ZoneInfo(self.timezone)).utcoffset()
        return int((offset or timedelta()).total_seconds() // 60)


def _check_locale(timezone: str, language: str) -> None:
    try:
        zoneinfo.ZoneInfo(timezone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"timezone: {timezone!r} is not an IANA time zone name") from None
    if language not in i18n.LANGUAGES:
        raise ValueError(f"language: {language!r} is not one of {', '.join(i18n.LANGUAGES)}")


@functools.cache
def _zone_map(path: str) -> ZoneMap:
    try:
        return ZoneMap.load(path)
    except ZoneError as exc:
        raise ValueError(f"zones: {exc}") from None


def check_database_url(url: str) -> None:
    """Raise ``ValueError`` naming ``database_url`` unless ``url`` is empty or a PostgreSQL URL
    (the incident archive's ``DATABASE_URL``)."""
    if not url:
        return
    parts = urlsplit(url)
    try:
        ok = parts.scheme in ("postgresql", "postgres") and bool(parts.hostname or parts.path)
        _ = parts.port
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(
            f"database_url: {url!r} is not a PostgreSQL URL (postgresql://user@host:port/db)"
        )


def consumer_name(configured: str = "") -> str:
    """A replica's name in its stream consumer group: ``configured``, else
    ``<hostname>-<pid>``, so replicas started without one never share a name (their pending
    entries would mix, and a restart of one would take the other's work in flight)."""
    return configured or f"{socket.gethostname()}-{os.getpid()}"


S = TypeVar("S", bound=Settings)


def load(
    cls: type[S],
    *,
    section: str,
    env: Mapping[str, str] | None = None,
    config_file: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> S:
    """Build ``cls`` from defaults, the config file, the environment and ``overrides``."""
    env = os.environ if env is None else env
    fields = {f.name for f in msgspec.structs.fields(cls)}
    raw: dict[str, Any] = {}
    origin: dict[str, str] = {}

    path = config_file or env.get(CONFIG_ENV)
    if path:
        table = _read_toml(Path(path))
        own = table.pop(section, {})
        if not isinstance(own, dict):
            raise SettingsError(f"{path}: [{section}] must be a table")
        # Other services' sections may share the file; only this one's keys are checked.
        shared = {k: v for k, v in table.items() if not isinstance(v, dict)}
        for scope, values in (("", shared), (f"[{section}] ", own)):
            for key, value in values.items():
                if key not in fields:
                    raise SettingsError(f"{path}: unknown setting {scope}{key!r}")
                raw[key] = value
                origin[key] = f"{path}: {scope}{key}"

    for name in fields:
        names = [ENV_PREFIX + name.upper()]
        if name == "redis_url":
            names.insert(0, "REDIS_URL")
        elif name == "database_url":
            names.insert(0, "DATABASE_URL")
        for var in names:
            if var in env:
                raw[name] = _from_env(env[var])
                origin[name] = f"environment variable {var}"

    for key, value in (overrides or {}).items():
        if key not in fields:
            raise SettingsError(f"unknown setting {key!r}")
        raw[key] = value
        origin[key] = f"option {key}"

    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(str(exc), origin)) from None


def _from_env(value: str) -> Any:
    """Environment values are strings; a JSON-looking value (list, table) is parsed as JSON."""
    stripped = value.strip()
    if stripped[:1] in "[{":
        try:
            return msgspec.json.decode(stripped)
        except msgspec.DecodeError:
            return value
    return value


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"config file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"config file {path} is not valid TOML: {exc}") from None


def _explain(message: str, origin: Mapping[str, str]) -> str:
    match = re.search(r"at `\$\.([A-Za-z0-9_]+)", message)
    if match:
        key = match.group(1)
        where = origin.get(key, "default")
        return f"setting {key!r} ({where}): {message}"
    return f"settings: {message}"
