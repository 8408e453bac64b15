"""Languages: one message catalogue per language (``polewatch/locales/<tag>.json``, flat
``"area.name": "text"`` tables with ``{param}`` placeholders), a lookup that falls back to
English, and the choice of a language from what a person asked for.

Every person-facing string lives in the catalogues: pages fetch theirs from the gateway
(``/i18n/catalogue.json``, see :mod:`gateway.console.language`), the citizen page, plates,
reports and the CLI call :func:`translate`. ``tests/test_i18n_catalogue.py`` fails when a key
lacks a translation.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from importlib import resources
from typing import Final

ENGLISH: Final = "en"
CHINESE: Final = "zh-CN"
LANGUAGES: Final = (CHINESE, ENGLISH)
"""Every language with a catalogue, the city's own first."""
COOKIE: Final = "pw_lang"
"""The cookie (and ``?lang=`` query) that carries a person's explicit choice."""

_ALIASES: Final = {"zh": CHINESE, "zh-cn": CHINESE, "zh-hans": CHINESE, "zh-sg": CHINESE,
                   "en": ENGLISH}  # fmt: skip
_PARAM: Final = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


class CatalogueError(Exception):
    """A catalogue file is unreadable or malformed; the message names the file and key."""


@functools.cache
def catalogue(language: str) -> Mapping[str, str]:
    """The messages of one language, exactly as its file has them (no fallback)."""
    if language not in LANGUAGES:
        raise CatalogueError(f"no catalogue for language {language!r}")
    item = resources.files("polewatch").joinpath("locales", f"{language}.json")
    try:
        data = json.loads(item.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise CatalogueError(f"locales/{language}.json: {exc}") from None
    if not isinstance(data, dict):
        raise CatalogueError(f"locales/{language}.json: must be one JSON object")
    for key, value in data.items():
        if not isinstance(value, str):
            raise CatalogueError(f"locales/{language}.json: {key!r} must be a string")
    return dict(data)


@functools.cache
def messages(language: str) -> Mapping[str, str]:
    """Every key of the English catalogue, in ``language`` where it has a translation."""
    merged = dict(catalogue(ENGLISH))
    merged.update(catalogue(normalise(language) or ENGLISH))
    return merged


def translate(key: str, language: str, /, **params: object) -> str:
    """The message ``key`` in ``language`` (English when missing there; the key itself when
    missing everywhere), with ``{name}`` placeholders filled from ``params``."""
    text = messages(normalise(language) or ENGLISH).get(key, key)
    if not params:
        return text
    return _PARAM.sub(lambda m: str(params.get(m.group(1), m.group(0))), text)


def normalise(tag: str | None) -> str | None:
    """A supported language for a tag such as ``zh``, ``zh-Hans-CN`` or ``en_US``; else None."""
    if not tag:
        return None
    parts = tag.strip().replace("_", "-").lower().split("-")
    if parts[0] == "zh":
        # Traditional-script tags are not Simplified Chinese; everything else is.
        return None if any(p in ("hant", "tw", "hk", "mo") for p in parts[1:]) else CHINESE
    return _ALIASES.get(parts[0])


def negotiate(accept_language: str | None, default: str = CHINESE) -> str:
    """The best supported language of an ``Accept-Language`` header (RFC 9110 quality
    values), or ``default`` when it names none of them."""
    ranked: list[tuple[float, int, str]] = []
    for position, item in enumerate((accept_language or "").split(",")):
        tag, _, rest = item.strip().partition(";")
        quality = 1.0
        match = re.fullmatch(r"\s*q\s*=\s*([0-9.]{1,5})\s*", rest) if rest else None
        if rest and match is None:
            continue
        if match is not None:
            try:
                quality = float(match.group(1))
            except ValueError:
                continue
        language = normalise(tag)
        if language is not None and quality > 0:
            ranked.append((-quality, position, language))
    return min(ranked)[2] if ranked else (normalise(default) or CHINESE)


def choose(explicit: str | None, accept_language: str | None, default: str = CHINESE) -> str:
    """A person's language: an explicit choice (query or cookie) first, then the browser's
    ``Accept-Language``, then the deployment's default."""
    return normalise(explicit) or negotiate(accept_language, default)


def placeholders(text: str) -> set[str]:
    """The ``{param}`` names a message uses (a translation must use the same ones)."""
    return set(_PARAM.findall(text))
