"""Code resolution for call-takers: exact codes at once, misread codes as ranked candidates."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from polewatch.poles.codes import CodeError
from polewatch.poles.index import PoleIndex
from polewatch.poles.inventory import read_inventory
from polewatch.poles.model import Pole

DIGITS = "0123456789"
LOOK_ALIKE = {"0": "O", "1": "I", "5": "S", "8": "B", "2": "Z", "6": "G"}


def pole(code: str, lon: float = 114.05, lat: float = 22.55) -> Pole:
    return Pole(code=code, lon=lon, lat=lat, city="t")


@pytest.fixture(scope="module")
def dc_index(data_dir: Path) -> PoleIndex:
    path = data_dir / "poles" / "dc_ddot_streetlights_downtown.csv"
    return PoleIndex(read_inventory(path, city="dc").poles)


def test_exact_code_gives_the_pole(shenzhen_index: PoleIndex, shenzhen_poles: list[Pole]) -> None:
    target = shenzhen_poles[1234]
    assert shenzhen_index.get(target.code) is target
    resolution = shenzhen_index.resolve(target.code)
    assert resolution.pole is target
    assert resolution.candidates[0].pole is target
    assert resolution.candidates[0].mistake == "exact"
    # its real look-alikes elsewhere come along (tests/test_misread.py)
    assert all(c.mistake != "exact" for c in resolution.candidates[1:])


def test_case_and_spacing_are_forgiven_when_unambiguous(dc_index: PoleIndex) -> None:
    hit = dc_index.get(" 6u 077")
    assert hit is not None and hit.code == "6U077"
    resolution = dc_index.resolve("6u077")
    assert resolution.pole is not None and resolution.pole.code == "6U077"
    assert resolution.candidates[0].mistake == "normalized"


def test_case_variants_of_two_real_codes_stay_ambiguous() -> None:
    index = PoleIndex([pole("ab12"), pole("AB12", lon=114.1)])
    assert index.get("ab12") is not None and index.get("ab12").code == "ab12"  # type: ignore[union-attr]
    assert index.get("Ab12") is None
    resolution = index.resolve("Ab12")
    assert resolution.pole is None
    assert {c.pole.code for c in resolution.candidates} == {"ab12", "AB12"}


@pytest.mark.parametrize(
    ("heard", "meant", "mistake"),
    [
        ("6UO77", "6U077", "confusion"),  # O for 0
        ("6U0TT", None, None),  # two wrong characters: nothing one mistake away
        ("24729D", "24729DC", "deletion"),
        ("24729DCC", "24729DC", "doubled"),
        ("24729DCX", "24729DC", "insertion"),
        ("6U707", "6U077", "transposition"),
    ],
)
def test_misread_dc_codes(
    dc_index: PoleIndex, heard: str, meant: str | None, mistake: str | None
) -> None:
    resolution = dc_index.resolve(heard)
    assert resolution.pole is None
    if meant is None:
        assert resolution.candidates == []
        return
    top = [(c.pole.code, c.mistake) for c in resolution.candidates[:3]]
    assert (meant, mistake) in top


def test_look_alike_is_cheaper_than_an_arbitrary_wrong_character() -> None:
    index = PoleIndex([pole("SGQ7036"), pole("SGQ0036")])
    resolution = index.resolve("SGQO036")
    assert [(c.pole.code, c.mistake) for c in resolution.candidates] == [
        ("SGQ0036", "confusion"),
        ("SGQ7036", "substitution"),
    ]
    several = index.resolve("5GQOO36")  # three look-alikes at once
    assert several.candidates[0].pole.code == "SGQ0036"
    assert several.candidates[0].mistake == "confusion"


def test_callers_position_ranks_equal_mistakes() -> None:
    west, east = pole("1234561", lon=113.90), pole("1234562", lon=114.40)
    index = PoleIndex([west, east])
    assert index.resolve("1234560", near=(113.91, 22.55)).candidates[0].pole is west
    near_east = index.resolve("1234560", near=(114.39, 22.55))
    assert near_east.candidates[0].pole is east
    assert near_east.candidates[0].distance_m is not None
    assert near_east.candidates[0].distance_m < 2000 < near_east.candidates[1].distance_m  # type: ignore[operator]


def test_limit_caps_the_candidates(shenzhen_index: PoleIndex) -> None:
    resolution = shenzhen_index.resolve("100100", limit=3)
    assert len(resolution.candidates) == 3
    assert [c.score for c in resolution.candidates] == sorted(
        c.score for c in resolution.candidates
    )


ALSO: dict[str, tuple[str, ...]] = {
    "deletion": ("deletion", "dropped_double"),
    "insertion": ("insertion", "doubled"),
}
"""A deleted or inserted digit next to its twin is the cheaper dropped/doubled digit."""


def _substitute(code: str, rng: random.Random) -> str:
    i = rng.randrange(len(code))
    return code[:i] + rng.choice(DIGITS.replace(code[i], "")) + code[i + 1 :]


def _delete(code: str, rng: random.Random) -> str:
    i = rng.randrange(len(code))
    return code[:i] + code[i + 1 :]


def _insert(code: str, rng: random.Random) -> str:
    i = rng.randrange(len(code) + 1)
    return code[:i] + rng.choice(DIGITS) + code[i:]


def _transpose(code: str, rng: random.Random) -> str:
    j = rng.choice([j for j in range(len(code) - 1) if code[j] != code[j + 1]])
    return code[:j] + code[j + 1] + code[j] + code[j + 2 :]


def _confuse(code: str, rng: random.Random) -> str:
    j = rng.choice([j for j, ch in enumerate(code) if ch in LOOK_ALIKE])
    return code[:j] + LOOK_ALIKE[code[j]] + code[j + 1 :]


@pytest.mark.parametrize(
    ("mistake", "make", "top3_near"),
    [
        ("substitution", _substitute, 0.9),
        ("deletion", _delete, 0.7),
        ("insertion", _insert, 0.9),
        ("transposition", _transpose, 0.9),
        ("confusion", _confuse, 1.0),
    ],
)
def test_every_kind_of_mistake_recovers_the_pole_in_the_100k_city(
    shenzhen_index: PoleIndex,
    shenzhen_poles: list[Pole],
    mistake: str,
    make: Callable[[str, random.Random], str],
    top3_near: float,
) -> None:
    rng = random.Random(mistake)
    tried = top3 = 0
    for target in rng.sample(shenzhen_poles, 400):
        if make is _confuse and not any(ch in LOOK_ALIKE for ch in target.code):
            continue
        heard = make(target.code, rng)
        if shenzhen_index.get(heard) is not None:
            continue  # the misreading is itself a real code: nothing to correct
        tried += 1
        everywhere = shenzhen_index.resolve(heard, limit=100).candidates
        kinds = {c.pole.code: c.mistake for c in everywhere}
        assert target.code in kinds, heard
        if mistake != "substitution" or kinds[target.code] != "confusion":
            assert kinds[target.code] in ALSO.get(mistake, (mistake,))
        # A caller's rough position, about 600 m off.
        nearby = shenzhen_index.resolve(heard, near=(target.lon + 0.005, target.lat + 0.003))
        top3 += target.code in [c.pole.code for c in nearby.candidates[:3]]
    assert tried > 100
    assert top3 / tried >= top3_near


@pytest.mark.parametrize("bad", ["", "   ", "x" * 200, "12\x0734"])
def test_input_that_cannot_be_a_code_is_refused(shenzhen_index: PoleIndex, bad: str) -> None:
    assert shenzhen_index.get(bad) is None
    with pytest.raises(CodeError):
        shenzhen_index.resolve(bad)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=40))
def test_resolve_never_crashes(dc_index: PoleIndex, text: str) -> None:
    try:
        resolution = dc_index.resolve(text)
    except CodeError:
        return
    assert len(resolution.candidates) <= 10
    assert resolution.pole is None or resolution.pole.code.upper() == "".join(text.split()).upper()


def test_sample_is_repeatable(shenzhen_index: PoleIndex) -> None:
    first = shenzhen_index.sample(50, seed=4)
    assert len({p.code for p in first}) == 50
    assert shenzhen_index.sample(50, seed=4) == first != shenzhen_index.sample(50, seed=5)
    assert len(PoleIndex([pole("A")]).sample(10)) == 1
