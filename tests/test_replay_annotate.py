"""``polewatch replay --annotate OUT.mp4`` on a rendered scene with a known crossing: the JSON
lines are those of a plain replay, the video is H.264 MP4 with one frame per analysed frame,
the tripwire, its count, the mask and the event caption are drawn where they belong, Debian's
Chromium plays the file, and the progress line shows on a terminal only."""

from __future__ import annotations

import io
import json
import sys
from pathlib import Path
from typing import Any

import av
import pytest
from browser import launch_sync, needs_chromium

from edge.video import synthetic
from edge.video.progress import Progress
from polewatch.cli import main

CAMERA = """
id = "synth"
source = "synthetic"
lon = 114.05
lat = 22.54
[analysis]
fps = 10
person_min_height = 20
sweep = 0
motion_mask = [[[250, 10], [310, 10], [310, 60], [250, 60]]]
[detector]
kind = "motion"
[[rules]]
type = "tripwire"
name = "gate"
line = [[160, 40], [160, 230]]
[[rules]]
type = "zone"
name = "lawn"
polygon = [[20, 170], [120, 170], [120, 230], [20, 230]]
"""
FRAMES = 100  # 60 empty frames for the background model, then a 40-frame walk


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("annotate")
    video = synthetic.write(
        root / "walk.avi", synthetic.scene([synthetic.walk((40, 150), (280, 150), 40)])
    )
    camera = root / "camera.toml"
    camera.write_text(CAMERA)
    return video, camera


@pytest.fixture(scope="module")
def annotated(scene: tuple[Path, Path]) -> tuple[Path, list[dict[str, Any]]]:
    video, camera = scene
    mp4, lines = video.with_name("out.mp4"), video.with_name("out.jsonl")
    args = ["replay", str(video), "--camera", str(camera), "--json"]
    assert main([*args, "--annotate", str(mp4), "--out", str(lines)]) == 0
    plain = video.with_name("plain.jsonl")
    assert main([*args, "--out", str(plain)]) == 0
    assert lines.read_text() == plain.read_text()  # the JSON lines are unchanged
    return mp4, [json.loads(line) for line in lines.read_text().splitlines()]


def decode(mp4: Path) -> tuple[Any, list[Any]]:
    with av.open(str(mp4)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="bgr24") for f in container.decode(stream)]
    return stream, frames


def magenta(pixel: Any) -> bool:
    b, g, r = (int(v) for v in pixel)
    return r > 170 and b > 170 and g < 110


def test_the_video_is_h264_with_every_analysed_frame(
    annotated: tuple[Path, list[dict[str, Any]]],
) -> None:
    mp4, lines = annotated
    data = mp4.read_bytes()
    assert data[4:8] == b"ftyp" and data.index(b"moov") < data.index(b"mdat")  # +faststart
    stream, frames = decode(mp4)
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert len(frames) == len([x for x in lines if "boxes" in x]) == FRAMES
    assert frames[0].shape == (240, 320, 3)


def test_lines_counts_masks_boxes_and_captions_are_drawn(
    annotated: tuple[Path, list[dict[str, Any]]],
) -> None:
    mp4, lines = annotated
    events = [x for x in lines if "event" in x]
    assert [e["event"]["rule"] for e in events] == ["tripwire"]
    fired = int(events[0]["frame"])
    _, frames = decode(mp4)
    # The tripwire (x = 160) is magenta on every frame, away from any label.
    assert all(magenta(f[200, 160]) for f in (frames[0], frames[fired], frames[-1]))
    # The mask is shaded: darker than the same place in the source scene.
    source = synthetic.scene([synthetic.walk((40, 150), (280, 150), 40)])
    assert frames[10][30:50, 260:300].mean() < source[10][30:50, 260:300].mean() - 15
    # The caption plate (bottom left) appears when the crossing fires and is gone 3 s later.
    plate = (slice(205, 232), slice(6, 150))
    assert frames[fired][plate].mean() < frames[fired - 1][plate].mean() - 20
    if fired + 30 < FRAMES:
        assert abs(frames[fired + 30][plate].mean() - frames[fired - 1][plate].mean()) < 10
    # A green person box around the walker while it is tracked.
    walker = next(x for x in lines if x.get("boxes") and int(x["frame"]) > 75)
    bx, by, bw, bh, _ = walker["boxes"][0]
    edge = frames[int(walker["frame"])][round(by + bh / 2), round(bx)]
    assert edge[1] > 150 and edge[2] < 150


@needs_chromium
def test_chromium_plays_the_annotated_video(
    annotated: tuple[Path, list[dict[str, Any]]],
) -> None:
    from playwright.sync_api import sync_playwright

    mp4, _ = annotated
    page_file = mp4.with_name("play.html")
    page_file.write_text(f'<video id="v" muted src="{mp4.name}"></video>')
    with sync_playwright() as p:
        browser = launch_sync(p)
        try:
            page = browser.new_page()
            page.goto(page_file.as_uri())
            page.evaluate("document.getElementById('v').play()")
            page.wait_for_function("document.getElementById('v').currentTime > 1.0", timeout=20_000)
            size = page.evaluate(
                "(v => [v.videoWidth, v.videoHeight, v.error])(document.getElementById('v'))"
            )
        finally:
            browser.close()
    assert size == [320, 240, None]


def test_progress_shows_on_a_terminal_only(
    scene: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    tty = Tty()
    progress = Progress(10, stream=tty)
    for _ in range(4):
        progress.tick()
    progress.done()
    assert "frames 4/10" in tty.getvalue() and "fps" in tty.getvalue()
    assert "left" in tty.getvalue()
    assert Progress(10, stream=io.StringIO()).enabled is False  # piped: quiet

    video, camera = scene
    for flags, shown in (([], True), (["--json"], False)):
        err = Tty()
        monkeypatch.setattr(sys, "stderr", err)
        out = tmp_path / "p.jsonl"
        assert main(["replay", str(video), "--camera", str(camera), "--out", str(out), *flags]) == 0
        assert (f"frames {FRAMES}/{FRAMES}" in err.getvalue()) is shown
