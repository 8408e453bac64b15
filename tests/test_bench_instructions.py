"""``polewatch bench instructions``: redis-server's instructions per alarm, counted by callgrind
while a real dispatcher drains the bench's alarms (cold and after others)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dispatcher import instructions

_LINES = st.lists(st.text(st.characters(exclude_characters="\n\r"), max_size=30), max_size=5)


@given(n=st.integers(0, 10**15), before=_LINES, after=_LINES)
def test_the_totals_line_is_read_wherever_it_is(
    n: int, before: list[str], after: list[str]
) -> None:
    lines = [x for x in before + after if not x.startswith("totals:")]
    profile = "\n".join([*lines[: len(before)], f"totals: {n}", *lines[len(before) :]])
    assert instructions.totals(profile) == n


@given(text=st.text())
def test_a_profile_without_totals_is_refused_by_name(text: str) -> None:
    if any(line.startswith("totals:") for line in text.splitlines()):
        return
    with pytest.raises(ValueError, match="totals"):
        instructions.totals(text)


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_both_states_count_the_alarms_the_dispatcher_drained(tmp_path: Path) -> None:
    out = instructions.measure(alarms=40, warm=40, profiles=tmp_path / "profiles")
    for state, after in (("cold", 0), ("warm", 40)):
        got = out[state]
        assert got["alarms"] == 40 and got["after"] == after
        assert got["incidents"] > 0 and got["dispatched"] > 0
        # Every alarm costs commands (merge search, record, ...) and many instructions.
        assert got["redis_commands_per_alarm"] >= 5
        assert got["instructions_per_alarm"] > 10_000
        # The profile kept is the one counted: its totals are the instructions reported.
        kept = (tmp_path / "profiles" / f"{state}.callgrind").read_text()
        assert round(instructions.totals(kept) / 40) == got["instructions_per_alarm"]
