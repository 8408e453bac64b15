"""The archiver's reading of the audit stream: every entry is archived or dead-lettered with
a reason, and the stream (the dispatcher's own writing) is decoded as the checked wire model
but for the ids' patterns."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from archiver.service import decode_batch
from polewatch import wire


def _events() -> st.SearchStrategy[wire.IncidentEvent]:
    return st.builds(
        wire.IncidentEvent,
        incident=st.from_regex(r"[a-z0-9-]{1,12}", fullmatch=True),
        event=st.sampled_from(["new", "dispatched", "closed", "cancelled"]),
        ts=st.floats(0, 4e9),
    )


def _text(value: bytes) -> str:
    return value.decode()


_fields = st.dictionaries(st.sampled_from([wire.FIELD, b"x", b"m2"]), st.binary(max_size=64))


@given(st.lists(st.one_of(_fields, st.builds(lambda e: wire.entry(e), _events())), max_size=20))
def test_every_audit_entry_is_archived_or_dead_lettered_with_a_reason(entries: list[Any]) -> None:
    batch = [(f"{n + 1}-0".encode(), fields) for n, fields in enumerate(entries)]
    rows, bad = decode_batch("", batch)
    assert len(rows) + len(bad) == len(batch)
    assert {r.entry_id for r in rows}.isdisjoint({_text(b[0]) for b in bad})
    assert all(reason for _, _, reason in bad)
    for row in rows:
        assert row.event == wire.decode(row.body, wire.StoredIncidentEvent)


def _odd_events() -> st.SearchStrategy[bytes]:
    """Events whose ids may break the patterns or the lengths (structs check on decoding)."""
    ids = st.text(max_size=130)
    return st.builds(
        wire.IncidentEvent, incident=ids, event=st.sampled_from(["new", "closed", "bogus"]),
        ts=st.floats(-1, 4e9), unit=st.none() | ids, actor=st.none() | ids,
        priority=st.none() | st.integers(0, 5),
    ).map(wire.encode)  # fmt: skip


@given(st.one_of(st.binary(max_size=80), _events().map(wire.encode), _odd_events()))
def test_the_audit_stream_decodes_as_checked_but_for_the_id_patterns(data: bytes) -> None:
    # The archiver reads the audit stream (the dispatcher's own writing) without the id
    # patterns: anything else the checked decoding refuses is refused too, with a reason.
    try:
        stored = wire.decode(data, wire.StoredIncidentEvent)
    except wire.WireError as exc:
        assert exc.reason
        stored = None
    try:
        checked = wire.decode(data, wire.IncidentEvent)
    except wire.WireError as exc:
        assert stored is None or "matching regex" in exc.reason, exc.reason
    else:
        assert stored is not None
        assert msgspec.structs.asdict(stored) == msgspec.structs.asdict(checked)
        assert isinstance(stored, wire.IncidentEvent)
        assert wire.encode(stored) == wire.encode(checked)
