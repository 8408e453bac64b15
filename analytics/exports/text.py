"""Text as other agencies' formats can carry it: XML 1.0 characters only, safe identifiers."""

from __future__ import annotations

import re
from typing import Final

_NOT_XML: Final = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_NOT_TOKEN: Final = re.compile(r"[^A-Za-z0-9._:@-]")


def clean(text: str) -> str:
    """``text`` with every character XML 1.0 cannot hold (control characters, lone
    surrogates, U+FFFE/U+FFFF) replaced by U+FFFD, so it survives XML and UTF-8 JSON."""
    return _NOT_XML.sub("\ufffd", text)


def token(text: str) -> str:
    """``text`` as an identifier token without spaces, commas, ``<`` or ``&`` (CAP 1.2 rules for
    ``identifier`` and ``sender``): other characters are percent-encoded as UTF-8."""
    return _NOT_TOKEN.sub(lambda m: "".join(f"%{b:02X}" for b in _utf8(m.group())), text) or "-"


def _utf8(char: str) -> bytes:
    return char.encode("utf-8", "surrogatepass")
