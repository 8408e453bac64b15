"""What a ``polewatch`` command prints for a person, in one shape for every command.

- ``--json``: the report as JSON on stdout, and nothing else there;
- otherwise the report's lines on stdout, with what an import refused listed by its place in
  the input (row, feature) and the reason: the first :data:`SHOWN` of them, then how many more;
- progress lines on stderr, only while a person watches (stderr is a terminal and no
  ``--json``): piped or redirected, a command's output is its report alone;
- an error is one line on stderr naming the command, with the exit status to return.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TextIO, TypeVar

import msgspec
import redis.asyncio as aioredis

from polewatch import i18n
from polewatch.connection import connect
from polewatch.settings import Settings

T = TypeVar("T")
P = TypeVar("P", bound="Refused")
SHOWN = 50
"""Refused items listed in a person's report (``--json`` lists all)."""


class Refused(Protocol):
    """Something an import refused or noted: a row, a feature."""

    @property
    def reason(self) -> str: ...


class Report:
    """The output of one run of ``polewatch COMMAND``."""

    def __init__(
        self,
        command: str,
        *,
        as_json: bool = False,
        language: str = i18n.ENGLISH,
        out: TextIO | None = None,
        err: TextIO | None = None,
    ) -> None:
        self.command = command
        self.as_json = as_json
        self.language = language
        self.out = out or sys.stdout
        self.err = err or sys.stderr

    def line(self, text: str) -> None:
        """One line of the person's report (stdout)."""
        print(text, file=self.out)

    def json(self, value: Any) -> None:
        """The whole report as indented JSON (stdout)."""
        print(msgspec.json.format(msgspec.json.encode(value), indent=2).decode(), file=self.out)

    def progress(self, key: str, **params: object) -> None:
        """Catalogue message ``key`` on stderr, for a person watching; quiet when piped or
        ``--json``."""
        if not self.as_json and self.err.isatty():
            print(i18n.translate(key, self.language, **params), file=self.err, flush=True)

    def refused(self, items: Sequence[P], place: Callable[[P], str], *, label: str = "") -> None:
        """``  {label}{place}: {reason}`` for the first :data:`SHOWN` items, then the count of
        the rest."""
        for item in items[:SHOWN]:
            self.line(f"  {label}{place(item)}: {item.reason}")
        if len(items) > SHOWN:
            self.line(f"  ... and {len(items) - SHOWN} more (--json lists all)")

    def fail(self, message: str, status: int = 2) -> int:
        """Say why the command failed (stderr); returns the exit status."""
        print(f"polewatch {self.command}: error: {message}", file=self.err)
        return status


def common_options(parser: argparse.ArgumentParser) -> None:
    """``--redis-url`` and ``--json``, as every registry command takes them."""
    parser.add_argument("--redis-url", help="Redis URL (default: the redis_url setting)")
    parser.add_argument("--json", action="store_true", help="print JSON")


def lonlat(text: str) -> tuple[float, float]:
    """An argparse type: ``LON,LAT``."""
    try:
        lon, lat = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected LON,LAT, got {text!r}") from None
    return lon, lat


def with_redis(
    settings: Settings,
    work: Callable[[aioredis.Redis], Awaitable[T]],
    *,
    name: str = "polewatch-cli",
) -> T:
    """Run ``work`` with a client of the settings' Redis (or cluster), closed after (``name``:
    the client's name in ``CLIENT LIST``)."""

    async def run() -> T:
        client = connect(settings.redis_url, name=name, retries=2, cluster=settings.redis_cluster)
        try:
            return await work(client)
        finally:
            await client.aclose()

    return asyncio.run(run())
