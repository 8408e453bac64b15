"""Pole codes: normalising what a caller read out, and the Shenzhen 7-digit scheme.

A code is stored as printed on the pole, in Unicode NFC. Its alphabet is every script's letters
and digits (what ``str.isalnum`` accepts: Latin, Han, Hangul, Cyrillic...) plus the separators
``_ . : @ # / -``, starting with a letter or digit, at most :data:`MAX_CODE_LENGTH`
characters, one script family per code (``А`` Cyrillic and ``A`` Latin in one code is refused:
a spoof). Markup, control and invisible characters are not in the alphabet. What people say or
type differs from it in case, spacing and width (``6u 077``, full-width ``６Ｕ０７７`` from a
Chinese input method), so :func:`normalize` folds those away for lookups (NFKC, case folded).
Digits and letters that look alike on a worn plate (O/0, I/1/L, S/5, B/8, Z/2, G/6) are *not*
folded by :func:`normalize`: that would make two real codes collide; the index treats them as
cheap substitutions instead (:data:`CONFUSABLE`).

The Shenzhen scheme (in use since 2005): ``DRRRPPP``, digit 1 the district, digits 2-4 the
road, digits 5-7 the pole along the road; on east-west roads the south side carries odd
numbers and the north side even, on north-south roads the east side odd and the west side
even. The districts carved out later (Longhua, Guangming from Bao'an; Pingshan, Dapeng from
Longgang) use their parent's digits.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final, Literal

import msgspec

MAX_CODE_LENGTH: Final = 32
"""Longer input is not a pole code (real ones are 5-8 characters); refused early."""

SEPARATORS: Final = "_.:@#/-"
PRINTABLE_CODE: Final = re.compile(r"[^\W_][\w.:@#/-]{0,31}")
r"""What a registered code may look like: letters and digits of any script and
:data:`SEPARATORS` (the characters an alarm's pole field carries, :data:`polewatch.wire.PoleRef`),
starting with a letter or digit, at most 32 of them (``[^\W_]`` is ``str.isalnum``)."""
_LOOKALIKE_SCRIPTS: Final = frozenset({"LATIN", "CYRILLIC", "GREEK"})
"""Scripts whose letters copy each other's shapes: a code may use only one of them."""


class CodeError(ValueError):
    """A pole code is empty, malformed or not valid in the scheme; the message says why."""


Side = Literal["odd", "even"]
Orientation = Literal["E-W", "N-S"]

DISTRICT_DIGITS: Final[dict[str, tuple[int, ...]]] = {
    "Futian": (1,),
    "Luohu": (2,),
    "Nanshan": (3,),
    "Yantian": (5,),
    "Bao'an": (6, 7),
    "Longhua": (6, 7),
    "Guangming": (6, 7),
    "Longgang": (8, 9),
    "Pingshan": (8, 9),
    "Dapeng": (8, 9),
}
"""Shenzhen district -> the first digits its codes may use (shared by parent and child)."""

DISTRICT_NAMES: Final[dict[str, str]] = {
    "福田": "Futian",
    "罗湖": "Luohu",
    "南山": "Nanshan",
    "盐田": "Yantian",
    "宝安": "Bao'an",
    "龙华": "Longhua",
    "光明": "Guangming",
    "龙岗": "Longgang",
    "坪山": "Pingshan",
    "大鹏": "Dapeng",
}
"""The ``qh`` property of the district polygons (Chinese) -> the English name polewatch uses."""

DIGIT_DISTRICTS: Final[dict[int, tuple[str, ...]]] = {
    digit: tuple(name for name, digits in DISTRICT_DIGITS.items() if digit in digits)
    for digit in sorted({d for ds in DISTRICT_DIGITS.values() for d in ds})
}
"""First digit -> the districts whose codes may start with it."""

_CONFUSABLE_GROUPS: Final = ("O0", "I1L", "S5", "B8", "Z2", "G6")
CONFUSABLE: Final[frozenset[tuple[str, str]]] = frozenset(
    (a, b) for group in _CONFUSABLE_GROUPS for a in group for b in group if a != b
)
"""Pairs of characters easily mistaken for each other when read from a plate or heard."""
SKELETON: Final[dict[int, int]] = {
    ord(c): ord(group[1]) for group in _CONFUSABLE_GROUPS for c in group
}
"""Folds each confusable character to one representative (``str.translate`` table)."""


def registrable(code: str) -> str | None:
    """Why ``code`` cannot be registered as printed, or ``None`` when it can (the importer
    gives it in NFC, see :func:`printed`)."""
    if len(code) > MAX_CODE_LENGTH:
        return f"code {code[:MAX_CODE_LENGTH]!r}... is longer than {MAX_CODE_LENGTH} characters"
    if unicodedata.normalize("NFC", code) != code:
        return f"code {code!r} is not in Unicode NFC form"
    if not PRINTABLE_CODE.fullmatch(code):
        return (
            f"code {code!r} has characters a pole code cannot carry (letters and digits of "
            f"any script and {' '.join(SEPARATORS)} only, starting with a letter or digit)"
        )
    mixed = sorted(_LOOKALIKE_SCRIPTS & {_script(c) for c in code if c.isalpha()})
    if len(mixed) > 1:
        return f"code {code!r} mixes look-alike scripts ({', '.join(mixed).lower()})"
    try:
        normalize(code)
    except CodeError as exc:
        return f"code {code!r}: {exc}"
    return None


def printed(cell: str) -> str:
    """An inventory cell as the code it prints: NFC, surrounding whitespace removed."""
    return unicodedata.normalize("NFC", cell).strip()


def _script(char: str) -> str:
    return unicodedata.name(char, "UNKNOWN").split(" ", 1)[0]


def normalize(code: str) -> str:
    """``code`` as a lookup key: whitespace removed, compatibility forms folded (full-width
    digits and letters, ligatures: NFKC), case folded to upper case.

    Raises :class:`CodeError` for anything that cannot be a pole code: not a string, empty,
    longer than :data:`MAX_CODE_LENGTH`, or holding control or invisible characters.
    """
    if not isinstance(code, str):
        raise CodeError(f"a pole code is text, not {type(code).__name__}")
    key = "".join(code.split())
    if len(key) > MAX_CODE_LENGTH:  # as typed: a compatibility form may expand when folded
        raise CodeError(f"{len(key)} characters is too long for a pole code")
    for _ in range(3):  # to a fixed point: the key of a key is itself
        folded = "".join(unicodedata.normalize("NFKC", key).casefold().upper().split())
        if folded == key:
            break
        key = folded
    if not key:
        raise CodeError("empty pole code")
    if not key.isprintable():
        raise CodeError("a pole code cannot contain control or invisible characters")
    return key


def skeleton(key: str) -> str:
    """A normalised key with every confusable character folded (O->0, L->1, ...)."""
    return key.translate(SKELETON)


class ShenzhenCode(msgspec.Struct, frozen=True, kw_only=True):
    """A parsed Shenzhen code ``DRRRPPP``."""

    code: str
    district_digit: int
    road: int
    pole: int
    side: Side
    """Parity of the pole number: which side of the road it stands on (see the module)."""

    @property
    def districts(self) -> tuple[str, ...]:
        """The districts whose codes start with this digit."""
        return DIGIT_DISTRICTS[self.district_digit]


def parse_shenzhen(code: str) -> ShenzhenCode:
    """Parse a Shenzhen code (whitespace and case folded first).

    Raises :class:`CodeError` with the reason: not 7 digits, a first digit no district uses
    (0 and 4), road 000 or pole 000.
    """
    key = normalize(code)
    if len(key) != 7 or not (key.isascii() and key.isdigit()):
        raise CodeError(f"a Shenzhen pole code is 7 digits, not {key!r}")
    digit, road, pole = int(key[0]), int(key[1:4]), int(key[4:])
    if digit not in DIGIT_DISTRICTS:
        raise CodeError(f"no Shenzhen district uses first digit {digit}")
    if road == 0:
        raise CodeError("road number 000 is not used")
    if pole == 0:
        raise CodeError("pole number 000 is not used")
    return ShenzhenCode(
        code=key,
        district_digit=digit,
        road=road,
        pole=pole,
        side="odd" if pole % 2 else "even",
    )


def format_shenzhen(district_digit: int, road: int, pole: int) -> str:
    """The 7-digit code of pole ``pole`` on road ``road`` of ``district_digit``."""
    if district_digit not in DIGIT_DISTRICTS or not (1 <= road <= 999 and 1 <= pole <= 999):
        raise CodeError(f"no Shenzhen code for digit {district_digit} road {road} pole {pole}")
    return f"{district_digit}{road:03d}{pole:03d}"


def side_of_road(orientation: Orientation, side: Side) -> str:
    """Where a pole stands: odd is south of E-W roads and east of N-S roads."""
    if orientation == "E-W":
        return "south" if side == "odd" else "north"
    return "east" if side == "odd" else "west"
