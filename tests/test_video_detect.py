"""The detector plug-ins: an ONNX model through cv2.dnn (a tiny YOLOv8-shaped model made for
this test: a person at the middle of its 64x64 input, a bus, and a doubtful person), chosen by
the camera config with the model's path relative to the config file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from edge.video import config as cfg
from edge.video import pipeline
from edge.video.boxes import Box
from edge.video.detect import OnnxDetector

MODEL = Path(__file__).resolve().parent / "data" / "tiny_yolov8_person.onnx"


def test_onnx_detector_keeps_confident_people_in_frame_coordinates() -> None:
    detector = OnnxDetector(MODEL, size=64, threshold=0.4)
    frame = np.zeros((240, 320, 3), np.uint8)
    # The model sees the regions' bounding box grown by 16 px: x 84-176, y 34-186.
    found = detector.detect(frame, [Box(100, 50, 60, 120, 0.0)])
    assert len(found) == 1  # the bus and the 0.2 person are dropped
    box = found[0]
    assert (box.x, box.y, box.w, box.h) == pytest.approx((118.5, 72.0, 23.0, 76.0))
    assert box.score == pytest.approx(0.9)
    assert detector.detect(frame, []) == []


def test_camera_config_picks_the_onnx_model_next_to_it(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "people.onnx").write_bytes(MODEL.read_bytes())
    camera = tmp_path / "cam.toml"
    camera.write_text(
        'id = "c"\nsource = "0"\nlon = 1\nlat = 2\n'
        '[detector]\nkind = "onnx"\nmodel = "models/people.onnx"\ninput_size = 64\n'
    )
    config = cfg.load(camera)
    assert config.detector.model == str(tmp_path / "models" / "people.onnx")
    analyzer = pipeline.build(config)
    assert isinstance(analyzer.detector, OnnxDetector)
    frame = np.full((240, 320, 3), 120, np.uint8)
    result = analyzer.analyse(frame, 0, 0.0)  # the first frame: a sweep of the whole view
    assert result.regions and not result.tracks  # one sighting is not a track yet
