"""District names: each district has an English name (the one stored with poles, incidents
and zones: ``Futian``), a slug (``futian``) and a Chinese name (``福田区``, short form
``福田``). Any of them, in any case and with or without the 区 suffix, names the same district
everywhere: the CLI, the console and the reports (``--district 福田区`` equals
``--district futian``). People read the name of their language (:func:`display`).

The names are Shenzhen's (:data:`polewatch.poles.codes.DISTRICT_NAMES`); a name no table
knows (another city's ward) is kept as it is and compared case-insensitively.
"""

from __future__ import annotations

import argparse
import re
import unicodedata
from dataclasses import dataclass
from typing import Final

from polewatch import i18n
from polewatch.poles.codes import DISTRICT_NAMES


@dataclass(frozen=True)
class District:
    """One district's names."""

    name: str
    """English, as stored in the data (``Bao'an``)."""
    slug: str
    """ASCII, lower case, for URLs and the command line (``baoan``)."""
    chinese: str
    """The full Chinese name (``宝安区``)."""

    def label(self, language: str) -> str:
        """The name a reader of ``language`` reads."""
        return self.chinese if i18n.normalise(language) == i18n.CHINESE else self.name


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.casefold())


DISTRICTS: Final[tuple[District, ...]] = tuple(
    District(name=english, slug=_slug(english), chinese=f"{short}区")
    for short, english in DISTRICT_NAMES.items()
)
"""Shenzhen's districts."""
_BY_KEY: Final[dict[str, District]] = {
    key: d
    for d in DISTRICTS
    for key in (_slug(d.name), d.chinese, d.chinese.removesuffix("区"), f"{_slug(d.name)}district")
}


def _key(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text).strip()
    return folded if _BY_KEY.get(folded) else _slug(folded)


def find(text: str | None) -> District | None:
    """The district ``text`` names in any of its forms, or ``None``."""
    if not text:
        return None
    return _BY_KEY.get(_key(text))


def canonical(text: str) -> str:
    """The name stored in the data for ``text`` (``福田区`` -> ``Futian``); unknown names are
    returned stripped, as they are."""
    district = find(text)
    return district.name if district else text.strip()


def same(a: str | None, b: str | None) -> bool:
    """Whether two names mean one district (``Futian`` and ``福田区``)."""
    if a is None or b is None:
        return a is b
    return canonical(a).casefold() == canonical(b).casefold()


def display(name: str | None, language: str) -> str:
    """A stored district name as a reader of ``language`` reads it (unknown: as stored)."""
    if not name:
        return ""
    district = find(name)
    return district.label(language) if district else name


def argument(text: str) -> str:
    """An ``argparse`` type: the canonical name of a district given in any form; an unknown
    one is an error listing the districts (a typo must not silently match no incident)."""
    district = find(text)
    if district is None:
        known = ", ".join(f"{d.chinese}/{d.slug}" for d in DISTRICTS)
        raise argparse.ArgumentTypeError(f"unknown district {text!r}; districts: {known}")
    return district.name
