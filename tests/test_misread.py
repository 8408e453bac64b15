"""The misread model: how callers misread and mishear painted codes, and real codes that are
themselves misreadings of other real codes, caught by plausibility and the caller's position."""

from __future__ import annotations

import string
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.testing import TEST_CITY, bearer, gateway_client, operator_token, store_poles
from polewatch.geo import haversine_m
from polewatch.poles import misread
from polewatch.poles.codes import CodeError, normalize
from polewatch.poles.index import (
    FAR_M,
    GENERATE_MAX,
    PoleIndex,
    _neighbours,
    _plausible,
    _searched,
    _with_look_alikes,
)
from polewatch.poles.model import Pole

BAOAN = (113.9290, 22.6996)  # where 6013158 stands in the demo city
LONGGANG = (114.0500, 22.7000)  # 12.4 km east of it


def pole(code: str, lon: float, lat: float) -> Pole:
    return Pole(code=code, lon=lon, lat=lat, city=TEST_CITY)


POLES = (
    pole("6013158", *BAOAN),
    pole("6031158", 113.8606, 22.8214),  # 15 km away, on another road
    pole("8013158", *LONGGANG),
    pole("6013160", BAOAN[0] + 0.0004, BAOAN[1]),  # the next pole along: the same place
)
INDEX = PoleIndex(POLES)


def test_a_swapped_real_code_brings_the_meant_one_along() -> None:
    resolution = INDEX.resolve("6031158")
    assert resolution.pole is not None and resolution.pole.code == "6031158"
    ranked = [(c.pole.code, c.mistake) for c in resolution.candidates]
    assert ranked[0] == ("6031158", "exact")
    assert ("6013158", "transposition") in ranked
    assert resolution.checks == ["look_alikes"]


def test_the_callers_position_ranks_the_near_look_alike_first() -> None:
    near_6013158 = (BAOAN[0] + 0.002, BAOAN[1])
    resolution = INDEX.resolve("6031158", near=near_6013158)
    assert resolution.candidates[0].pole.code == "6013158"
    assert set(resolution.checks) == {"look_alikes", "nearer_candidate", "far_from_caller"}
    mine = next(c for c in resolution.candidates if c.pole.code == "6031158")
    assert mine.distance_m is not None and mine.distance_m > FAR_M


def test_8013158_heard_as_6013158_with_the_caller_12_km_away() -> None:
    caller = (LONGGANG[0] + 0.001, LONGGANG[1])
    assert haversine_m(*caller, *BAOAN) > 12_000
    resolution = INDEX.resolve("6013158", near=caller)
    assert resolution.pole is not None and resolution.pole.code == "6013158"
    assert resolution.candidates[0].pole.code == "8013158"
    assert "nearer_candidate" in resolution.checks and "far_from_caller" in resolution.checks


def test_a_real_code_with_the_caller_beside_it_needs_no_check() -> None:
    resolution = INDEX.resolve("8013158", near=(LONGGANG[0] + 0.001, LONGGANG[1]))
    assert resolution.candidates[0].pole.code == "8013158"
    assert "nearer_candidate" not in resolution.checks
    assert "far_from_caller" not in resolution.checks


def test_look_alikes_at_the_same_place_are_not_offered() -> None:
    resolution = INDEX.resolve("6013158")
    assert "6013160" not in [c.pole.code for c in resolution.candidates]  # 41 m away
    lone = PoleIndex([pole("AB12", *BAOAN)]).resolve("AB12")
    assert lone.checks == [] and len(lone.candidates) == 1


def test_6073158_puts_6013158_first(shenzhen_index: PoleIndex) -> None:
    assert shenzhen_index.get("6073158") is None and shenzhen_index.get("6013158") is not None
    resolution = shenzhen_index.resolve("6073158")
    assert resolution.candidates[0].pole.code == "6013158"
    assert resolution.candidates[0].mistake == "confusion"


@pytest.mark.parametrize("pair", ["17", "69", "08", "38", "56", "68", "59"])
def test_each_digit_confusion_is_cheaper_than_any_wrong_digit(pair: str) -> None:
    a, b = pair[0], pair[1]
    kind, cost = misread.substitution(a, b)
    assert kind == "confusion" and cost < misread.COST["substitution"]
    assert misread.substitution(b, a) == (kind, cost)
    assert misread.substitution("2", "4") == ("substitution", 1.0)


@pytest.mark.parametrize(
    ("heard", "meant", "kind"),
    [
        ("60113158", "6013158", "doubled"),
        ("6013518", "6013158", "transposition"),
        ("601358", "6013158", "deletion"),
        ("601158", "6011158", "dropped_double"),
        ("6O13158", "6013158", "confusion"),
        ("G0I3I58", "6013158", "confusion"),
        ("6013157", "6013158", "substitution"),
    ],
)
def test_kinds_of_mistake(heard: str, meant: str, kind: str) -> None:
    index = PoleIndex([pole(meant, *BAOAN)])
    resolution = index.resolve(heard)
    assert [(c.pole.code, c.mistake) for c in resolution.candidates] == [(meant, kind)]


def test_plausible_mistakes_outrank_arbitrary_ones() -> None:
    index = PoleIndex([pole("6013158", *BAOAN), pole("6093158", *BAOAN), pole("6078158", *BAOAN)])
    # heard 6073158: 1/7 (6013158) beats 3/8 (6078158) beats an arbitrary 9/7 (6093158)
    ranked = [c.pole.code for c in index.resolve("6073158").candidates]
    assert ranked == ["6013158", "6078158", "6093158"]


CODES = st.text(alphabet="0123456789OISBZGL", min_size=1, max_size=9)


@settings(max_examples=200, deadline=None)
@given(st.lists(CODES, min_size=1, max_size=30, unique=True), CODES)
def test_any_index_and_any_heard_code(codes: list[str], heard: str) -> None:
    index = PoleIndex([pole(c, BAOAN[0] + i * 0.01, BAOAN[1]) for i, c in enumerate(codes)])
    for near in (None, LONGGANG):
        resolution = index.resolve(heard, near=near, limit=5)
        assert len(resolution.candidates) <= 5
        scores = [c.score for c in resolution.candidates]
        assert scores == sorted(scores)
        if resolution.pole is not None:
            assert resolution.pole in [c.pole for c in resolution.candidates]
        assert set(resolution.checks) <= {"look_alikes", "nearer_candidate", "far_from_caller"}


@settings(max_examples=300, deadline=None)
@given(st.lists(CODES, min_size=1, max_size=40, unique=True), CODES)
def test_generated_misreadings_are_what_the_search_finds(codes: list[str], heard: str) -> None:
    key = normalize(heard)
    # real codes around the heard one: plausible misreadings and arbitrary one-edit ones
    near = [*misread.plausible_variants(key), *(key[:i] + key[i + 1 :] for i in range(len(key)))]
    near += [key[:i] + "4" + key[i + 1 :] for i in range(len(key))]
    tables = PoleIndex([pole(c, *BAOAN) for c in {*codes, *near} if c])._tables
    searched = _searched(key, tables)
    wanted = {k: v for k, v in searched.items() if v[1] <= misread.PLAUSIBLE}
    assert _plausible(key, tables) == wanted
    generated = misread.one_edit_variants(key, tables.alphabet, tables.by_key)
    assert _with_look_alikes(key, tables, generated) == searched
    if len(tables.alphabet) <= GENERATE_MAX:
        assert _neighbours(key, tables, generate=True) == searched


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=string.printable + "０１七", max_size=40))
def test_resolving_anything_answers_or_refuses_with_a_code_error(text: str) -> None:
    try:
        resolution = INDEX.resolve(text, near=BAOAN)
    except CodeError:
        return
    assert all(c.score >= 0 for c in resolution.candidates)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=8), st.text(max_size=8))
def test_same_length_is_symmetric_and_total(a: str, b: str) -> None:
    n = min(len(a), len(b))
    a, b = a[:n], b[:n]
    forward, backward = misread.same_length(a, b), misread.same_length(b, a)
    assert forward == backward
    if forward is not None:
        assert forward[1] <= misread.COST["substitution"]


OPERATOR = bearer(operator_token("alice"))


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[TestClient[Any, Any]]:
    await store_poles(redis_url, POLES)
    async with gateway_client(redis_url) as client:
        yield client


async def test_the_lookup_api_answers_candidates_and_checks(
    client: TestClient[Any, Any],
) -> None:
    resp = await client.get(f"/api/poles/6013158?lon={LONGGANG[0]}&lat={LONGGANG[1]}",
                            headers=OPERATOR)  # fmt: skip
    assert resp.status == 200
    body = await resp.json()
    assert body["pole"]["code"] == "6013158"
    assert body["candidates"][0]["code"] == "8013158"
    assert "far_from_caller" in body["checks"] and "nearer_candidate" in body["checks"]
    resp = await client.get(f"/api/poles/6013158?near={BAOAN[0]},{BAOAN[1]}", headers=OPERATOR)
    body = await resp.json()
    assert body["candidates"][0]["code"] == "6013158" and "far_from_caller" not in body["checks"]
    for bad in ("lon=114", "lat=22.5", "lon=x&lat=22.5", "lon=200&lat=10"):
        resp = await client.get(f"/api/poles/6013158?{bad}", headers=OPERATOR)
        assert resp.status == 422, bad
