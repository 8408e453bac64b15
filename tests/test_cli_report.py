"""What ``polewatch poles import`` and ``polewatch roads import`` print for a person: refused
rows and features by number with the reason, the first 50 then a count; progress on a terminal
only, never in piped output or beside ``--json``."""

from __future__ import annotations

import json
import os
import select
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest

from polewatch.cli import main

DONE = "<done>"


def roads_file(path: Path, bad: int) -> Path:
    good = {
        "type": "Feature",
        "properties": {"highway": "primary", "name": "深南大道"},
        "geometry": {"type": "LineString", "coordinates": [[114.05, 22.54], [114.06, 22.54]]},
    }
    broken = {"type": "Feature", "properties": {"highway": "primary"}}  # no geometry
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [good] + [broken] * bad}))
    return path


@pytest.fixture
def terminal() -> Iterator[tuple[TextIO, int]]:
    """A real pseudo-terminal: the file that writes to it, the descriptor that reads what it
    shows."""
    reader, writer = os.openpty()
    tty = os.fdopen(writer, "w", encoding="utf-8")
    yield tty, reader
    tty.close()
    os.close(reader)


def shown(terminal: tuple[TextIO, int]) -> str:
    """Everything written to the terminal so far (up to a marker written now)."""
    tty, reader = terminal
    print(DONE, file=tty, flush=True)
    text = b""
    while DONE.encode() not in text:
        ready, _, _ = select.select([reader], [], [], 10)
        assert ready, "the terminal shows nothing"
        text += os.read(reader, 65536)
    return text.decode("utf-8").split(DONE)[0]


def test_progress_is_shown_on_a_terminal_and_never_beside_json_or_when_piped(
    tmp_path: Path,
    terminal: tuple[TextIO, int],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # stderr on the terminal (pytest's capture is set per test call: replaced here, in it)
    captured = sys.stderr
    monkeypatch.setattr(sys, "stderr", terminal[0])
    monkeypatch.setenv("POLEWATCH_LANGUAGE", "en")
    args = ["roads", "import", str(roads_file(tmp_path / "r.geojson", 1)), "--dry-run"]
    assert main(args) == 0
    progress = shown(terminal)
    assert "Reading" in progress and "Building the road graph from 1 ways" in progress
    assert "Reading" not in capsys.readouterr().out  # the report itself stays on stdout

    assert main([*args, "--json"]) == 0
    assert shown(terminal).strip() == ""
    assert json.loads(capsys.readouterr().out)["refused"] == 1

    csv = tmp_path / "p.csv"
    csv.write_text("STREETLIGHTID,STREETNAME,XCOORD,YCOORD\nA,X,-77.01,38.90\n")
    monkeypatch.setenv("POLEWATCH_LANGUAGE", "zh-CN")
    assert main(["poles", "import", str(csv), "--city", "dc", "--dry-run"]) == 0
    assert "正在读取" in shown(terminal)

    monkeypatch.setattr(sys, "stderr", captured)  # piped: pytest's capture, not a terminal
    assert main(args) == 0
    assert "Reading" not in capsys.readouterr().err


def test_refused_rows_and_features_are_listed_by_number_with_the_reason_then_counted(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = roads_file(tmp_path / "r.geojson", 53)
    assert main(["roads", "import", str(path), "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line for line in lines if ": no geometry" in line]
    assert listed[0] == f"  {path} feature 2: no geometry"
    assert len(listed) == 50 and listed[-1] == f"  {path} feature 51: no geometry"
    assert "  ... and 3 more (--json lists all)" in lines

    csv = tmp_path / "p.csv"
    rows = "".join(f"P{i},X,-77.01,95.0\n" for i in range(52))
    csv.write_text("STREETLIGHTID,STREETNAME,XCOORD,YCOORD\n" + rows)
    assert main(["poles", "import", str(csv), "--city", "dc", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    listed = [line for line in lines if line.startswith("  row ")]
    assert len(listed) == 50 and listed[0].startswith("  row 2 [P0]: ")
    assert "  ... and 2 more (--json lists all)" in lines
