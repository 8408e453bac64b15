"""Property tests of the gateway's decoders: no input crashes them, every rejection is the
gateway's own error (a 400/422 :class:`HttpError`, a :class:`FrameError`, a :class:`TokenError`)
and every acceptance is a value that passes the wire model's own validation."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway import bodies, frames
from gateway.alarms import issued_here, new_alarm_id
from gateway.auth import TokenError, mint, verify
from gateway.errors import HttpError
from gateway.incidents import parse_near
from gateway.patrol import unit_event
from polewatch import wire
from polewatch.poles.codes import normalize, registrable

SECRET = "property-test-secret-0123"
BODIES = [
    bodies.CitizenAlarm, bodies.OperatorIncident, bodies.Position, bodies.Duty,
    bodies.StatusUpdate, bodies.Reassign, bodies.AddUnit, bodies.Cancel, bodies.Close,
    bodies.Merge, bodies.Split,
]  # fmt: skip

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=40)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=5)
    ),  # fmt: skip
    max_leaves=12,
)
field_names = st.sampled_from(
    ["pole", "type", "text", "phone", "lon", "lat", "duty", "grid", "capabilities", "action",
     "detail", "unit", "reason", "evaluation", "other", "alarm", "speed_mps", "heading",
     "incident", "ref"]
)  # fmt: skip
likely_objects = st.dictionaries(field_names, json_values, max_size=6)


def as_json(value: Any) -> bytes:
    return json.dumps(value, allow_nan=True).encode()


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(BODIES), data=st.binary(max_size=200))
def test_arbitrary_bytes_are_accepted_or_refused_with_400_or_422(kind: Any, data: bytes) -> None:
    try:
        bodies.decode(data, kind)
    except HttpError as exc:
        assert exc.status in (400, 422) and exc.message


@settings(max_examples=500, deadline=None)
@given(kind=st.sampled_from(BODIES), value=likely_objects | json_values)
def test_json_of_any_shape_is_accepted_or_refused_with_422(kind: Any, value: Any) -> None:
    try:
        body = bodies.decode(as_json(value), kind)
    except HttpError as exc:
        assert exc.status in (400, 422) and exc.message
        return
    assert isinstance(body, kind)
    if isinstance(body, bodies.Position | bodies.Duty):
        # whatever a unit's report decoded to is a valid wire message
        message = unit_event("U1", body)
        assert wire.decode(wire.encode(message)) == message


@settings(max_examples=500, deadline=None)
@given(value=likely_objects | json_values, kind=st.sampled_from(
    ["ack", "decline", "status", "position", "duty", "x"]))  # fmt: skip
def test_unit_frames_decode_or_raise_frame_error(value: Any, kind: str) -> None:
    if isinstance(value, dict):
        value = {**value, "type": kind}
    try:
        frame = frames.decode(as_json(value))
    except frames.FrameError as exc:
        assert str(exc)
        return
    message = unit_event("U1", frame.item())
    assert wire.decode(wire.encode(message)) == message


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=100) | st.text(max_size=100))
def test_unit_frames_of_random_bytes(data: bytes | str) -> None:
    with pytest.raises(frames.FrameError):
        frames.decode(data if data else b" ")


@settings(max_examples=300, deadline=None)
@given(token=st.text(max_size=200))
def test_tokens_verify_or_raise_token_error(token: str) -> None:
    with pytest.raises(TokenError):
        verify(SECRET, token)


@settings(max_examples=100, deadline=None)
@given(
    role=st.sampled_from(["unit", "operator", "supervisor"]),
    subject=st.from_regex(r"\A[A-Za-z0-9_.:@#/-]{1,40}\Z"),
    flip=st.integers(min_value=0, max_value=200),
)
def test_minted_tokens_round_trip_and_any_tampering_is_refused(
    role: str, subject: str, flip: int
) -> None:
    token = mint(SECRET, role, subject, 60)
    principal = verify(SECRET, token)
    assert (principal.role, principal.subject) == (role, subject)
    index = flip % len(token)
    tampered = token[:index] + ("A" if token[index] != "A" else "B") + token[index + 1 :]
    with pytest.raises(TokenError):
        verify(SECRET, tampered)


def test_a_token_spelled_differently_but_decoding_to_the_same_signature_is_refused() -> None:
    # The last base64 character of a 32-byte signature carries two spare bits: flipping
    # one gives another string with the same bytes. Found by hypothesis in CI.
    token = mint(SECRET, "unit", "P-1", 60)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    last = alphabet.index(token[-1])
    twin = token[:-1] + alphabet[last ^ 1]
    assert verify(SECRET, token).subject == "P-1"
    with pytest.raises(TokenError):
        verify(SECRET, twin)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=40))
def test_near_parses_or_refuses_with_422(value: str) -> None:
    try:
        near = parse_near(value)
    except HttpError as exc:
        assert exc.status == 422
        return
    assert near is None or (-180 <= near[0] <= 180 and -90 <= near[1] <= 90)


@settings(max_examples=200, deadline=None)
@given(value=st.text(max_size=80))
def test_alarm_id_signatures_only_match_ids_issued_with_the_secret(value: str) -> None:
    assert not issued_here(SECRET, value)
    issued = new_alarm_id(SECRET)
    assert issued_here(SECRET, issued) and not issued_here("other-secret-0123456", issued)


def test_request_schemas_are_the_structs_schemas() -> None:
    # a tiny guard that the body structs stay plain msgspec structs with a JSON schema
    for kind in BODIES:
        schema = msgspec.json.schema(kind)
        assert schema["$defs"][kind.__name__]["additionalProperties"] is False


POLE_CODE_PATTERN = msgspec.json.schema(bodies.PoleCode)["pattern"]


@settings(max_examples=400, deadline=None)
@given(
    value=st.text(max_size=70)
    | st.from_regex(POLE_CODE_PATTERN, fullmatch=True)
    | st.text(alphabet=" 0123456789AbZ.-/\x00\x1f\x85\u200b\u00a0", max_size=70)
)
def test_every_pole_code_the_schema_allows_is_one_the_resolver_takes(value: str) -> None:
    """The document's PoleCode refuses everything the resolver refuses (no 422 for a
    schema-valid code), and what it allows as printed could be a registered code that an
    alarm carries (wire.PoleRef)."""
    try:
        msgspec.convert(value, bodies.PoleCode)
    except msgspec.ValidationError:
        return
    normalize(value)  # raises CodeError for what the resolver refuses
    printed = "".join(value.split())
    if registrable(printed) is None:
        msgspec.convert(printed, wire.PoleRef)
