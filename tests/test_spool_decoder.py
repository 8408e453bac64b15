"""Property tests of the spool: damage after good records is found and reported, never raised,
and never costs a record before it; any history of use keeps it equal to a FIFO model."""

from __future__ import annotations

import shutil
import tempfile
import zlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from edge.spool import HEADER, FileSpool, Record, decode_record, frame, scan
from edge.testing import alarm, heartbeat
from polewatch import wire

records = st.lists(
    st.one_of(
        st.integers(0, 10_000).map(lambda n: Record(alarm(n))),
        st.integers(0, 10_000).map(lambda n: Record(heartbeat(n))),
        st.tuples(st.integers(0, 10_000), st.binary(max_size=64)).map(
            lambda t: Record(alarm(t[0], text="x" * (t[0] % 50)), t[1])
        ),
    ),
    max_size=12,
)


@given(records, st.binary(max_size=200))
def test_garbage_after_good_records_never_costs_a_good_record(good, tail):
    data = b"".join(frame(r) for r in good) + tail
    found = scan(data)
    decoded = [decode_record(p) for _, p in found.frames[: len(good)]]
    assert decoded == good
    assert found.end <= len(data)
    if found.error is None:
        assert found.end == len(data)


@given(records, st.data())
def test_a_truncated_tail_is_reported_at_the_last_good_record(good, data):
    whole = b"".join(frame(r) for r in good)
    cut = data.draw(st.integers(0, len(whole)))
    found = scan(whole[:cut])
    boundaries = [0]
    for r in good:
        boundaries.append(boundaries[-1] + len(frame(r)))
    kept = max(i for i, b in enumerate(boundaries) if b <= cut)
    assert len(found.frames) == kept
    assert found.end == boundaries[kept]
    assert (found.error is None) == (cut == boundaries[kept])


@given(records, st.data())
def test_a_flipped_byte_stops_the_scan_at_the_damaged_record(good, data):
    whole = bytearray(b"".join(frame(r) for r in good))
    if not whole:
        return
    pos = data.draw(st.integers(0, len(whole) - 1))
    whole[pos] ^= data.draw(st.integers(1, 255))
    found = scan(bytes(whole))
    start, damaged = 0, 0
    for damaged, r in enumerate(good):  # noqa: B007
        if start + len(frame(r)) > pos:
            break
        start += len(frame(r))
    # everything before the damaged record survives; the scan stops there and says why
    assert [decode_record(p) for _, p in found.frames] == good[:damaged]
    assert found.end == start and found.error is not None


@given(st.binary(max_size=300))
def test_decode_record_rejects_with_wire_error_only(payload):
    try:
        record = decode_record(payload)
    except wire.WireError as exc:
        assert exc.reason
    else:
        assert isinstance(record, Record)


@given(st.binary(max_size=300))
def test_scan_never_raises_on_arbitrary_bytes(data):
    found = scan(data)
    assert found.end <= len(data)
    for offset, payload in found.frames:
        length, crc = HEADER.unpack_from(data, offset)
        assert length == len(payload) and crc == zlib.crc32(payload)


class SpoolModel(RuleBasedStateMachine):
    """Any sequence of appends, replays, acknowledgements, restarts and overflows keeps the
    file spool equal to a plain FIFO model with the documented drop policy."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="spool-model-"))
        self.spool = FileSpool(self.dir, max_records=12, fsync="never")
        self.model: list[Record] = []
        self.n = 0

    @rule(alarms=st.lists(st.booleans(), min_size=1, max_size=6))
    def append(self, alarms: list[bool]) -> None:
        batch = []
        for is_alarm in alarms:
            self.n += 1
            batch.append(Record(alarm(self.n) if is_alarm else heartbeat(self.n)))
        self.spool.append(batch)
        self.model += batch
        if len(self.model) > 12:  # down to 90 %: heartbeats first, then the oldest alarms
            excess = len(self.model) - int(12 * 0.9)
            for want_alarm in (False, True):
                for r in list(self.model):
                    if excess and r.is_alarm == want_alarm:
                        self.model.remove(r)
                        excess -= 1

    @rule(n=st.integers(1, 5))
    def replay(self, n: int) -> None:
        batch = self.spool.peek(n)
        assert [r for _, r in batch] == self.model[:n]
        if batch:
            self.spool.ack(batch[-1][0])
            del self.model[: len(batch)]

    @rule()
    def restart(self) -> None:
        self.spool.close()
        self.spool = FileSpool(self.dir, max_records=12, fsync="never")

    @rule(garbage=st.binary(min_size=1, max_size=40))
    def crash_mid_write(self, garbage: bytes) -> None:
        self.spool.close()
        (log,) = self.dir.glob("spool-*.log")
        with log.open("ab") as fh:
            fh.write(garbage)
        self.spool = FileSpool(self.dir, max_records=12, fsync="never")

    @invariant()
    def same_content(self) -> None:
        assert len(self.spool) == len(self.model)

    def teardown(self) -> None:
        self.spool.close()
        shutil.rmtree(self.dir, ignore_errors=True)


TestSpoolModel = SpoolModel.TestCase
TestSpoolModel.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)
