"""Pole codes: normalising what callers say, and the Shenzhen 7-digit scheme."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from polewatch.poles.codes import (
    CodeError,
    format_shenzhen,
    normalize,
    parse_shenzhen,
    side_of_road,
    skeleton,
)


def test_normalize_folds_case_and_spacing_only() -> None:
    assert normalize("  6u 077 ") == "6U077"
    assert normalize("24729dc") == "24729DC"
    assert normalize("SGQ0036") == "SGQ0036"
    assert normalize("S6Q0O36") != normalize("SGQ0036")  # look-alikes stay distinct


@pytest.mark.parametrize("bad", ["", "   ", "\t\n", "12\x0034", "1" * 33])
def test_normalize_refuses_what_cannot_be_a_code(bad: str) -> None:
    with pytest.raises(CodeError):
        normalize(bad)


def test_normalize_refuses_non_text() -> None:
    with pytest.raises(CodeError, match="text"):
        normalize(1234567)  # type: ignore[arg-type]


def test_skeleton_folds_look_alikes() -> None:
    assert skeleton("SGQ0O36") == skeleton("5GQ0036") == "56Q0036"
    assert skeleton("BIZL") == "8121"


def test_parse_shenzhen_reads_district_road_pole_and_side() -> None:
    code = parse_shenzhen("3 012 047")
    assert (code.district_digit, code.road, code.pole, code.side) == (3, 12, 47, "odd")
    assert code.districts == ("Nanshan",)
    assert parse_shenzhen("6001002").side == "even"
    assert set(parse_shenzhen("7001002").districts) == {"Bao'an", "Longhua", "Guangming"}
    assert set(parse_shenzhen("9001002").districts) == {"Longgang", "Pingshan", "Dapeng"}


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("123456", "7 digits"),
        ("12345678", "7 digits"),
        ("12a4567", "7 digits"),
        ("１２３４５６", "7 digits"),  # full-width digits count as digits (below), still 6
        ("一二三四五六七", "7 digits"),  # Chinese numerals are not digits of a code
        ("4012001", "first digit 4"),
        ("0012001", "first digit 0"),
        ("1000001", "road number 000"),
        ("1012000", "pole number 000"),
        ("", "empty"),
    ],
)
def test_parse_shenzhen_says_why_a_code_is_invalid(bad: str, reason: str) -> None:
    with pytest.raises(CodeError, match=reason):
        parse_shenzhen(bad)


def test_format_and_parse_round_trip() -> None:
    assert format_shenzhen(8, 5, 12) == "8005012"
    parsed = parse_shenzhen(format_shenzhen(8, 5, 12))
    assert (parsed.road, parsed.pole) == (5, 12)
    with pytest.raises(CodeError):
        format_shenzhen(4, 1, 1)


def test_sides_follow_the_scheme() -> None:
    assert side_of_road("E-W", "odd") == "south"
    assert side_of_road("E-W", "even") == "north"
    assert side_of_road("N-S", "odd") == "east"
    assert side_of_road("N-S", "even") == "west"


@given(st.text(max_size=64))
def test_normalize_never_crashes(text: str) -> None:
    try:
        key = normalize(text)
    except CodeError:
        return
    assert key and key == key.upper() and not any(c.isspace() for c in key)
    assert normalize(key) == key


@given(st.one_of(st.text(max_size=16), st.text(alphabet="0123456789 ", max_size=10)))
def test_parse_shenzhen_never_crashes(text: str) -> None:
    try:
        code = parse_shenzhen(text)
    except CodeError:
        return
    assert format_shenzhen(code.district_digit, code.road, code.pole) == code.code
    assert code.side == ("odd" if code.pole % 2 else "even")


@given(st.from_type(object))
def test_normalize_rejects_any_object_with_code_error(value: object) -> None:
    try:
        key = normalize(value)  # type: ignore[arg-type]
    except CodeError:
        return
    assert isinstance(value, str) and key == normalize(key)


def test_full_width_digits_from_a_chinese_input_method_read_as_the_code() -> None:
    assert parse_shenzhen("３０１２０４７").code == "3012047"
    assert normalize("６ｕ　０７７") == "6U077"  # an ideographic space, too
