"""The demo's synthetic camera scenes raise exactly the alarms they were made for, at the
moments their ground truth says, through the real pipeline and the demo's own camera configs:
a car driving the wrong way, a car on the pedestrian plaza, a car parked in the no-parking
bay; movement at a door at night, someone lingering there, someone climbing into the yard.
The car driving the right way and the people on the plaza raise nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.video import config as cfg
from edge.video import pipeline
from edge.video.replay import frames
from polewatch.poles.model import Pole
from simulators import scenes
from simulators.edge import write_cameras


@pytest.mark.parametrize("scene", scenes.SCENES, ids=lambda s: s.name)
def test_a_scene_raises_its_ground_truth_and_nothing_else(
    scene: scenes.Scene, tmp_path: Path
) -> None:
    poles = [Pole(code=f"550000{n}", lon=114.0, lat=22.6, city="shenzhen") for n in range(3)]
    camera = next(c for c in write_cameras(tmp_path, poles, 3, seed=1)
                  if c.id.startswith(scene.name))  # fmt: skip
    config = cfg.load(camera.config)  # the demo's own config, read as the agent reads it
    analyzer = pipeline.build(config)
    stride = round(scenes.FPS / config.analysis.fps)
    seen: list[tuple[str, float]] = []
    for index, image in frames(config.source, stride=stride):
        t = index / scenes.FPS
        seen += [(e.name, t) for e in analyzer.analyse(image, index, 1000.0 + t).events]
    assert [name for name, _ in seen] == [e.rule for e in scene.expected], seen
    for (name, t), want in zip(seen, scene.expected, strict=True):
        assert want.start <= t <= want.end, (name, t, want)
