"""The vendored COCO detector on real frames: the parked van and car at the top right of vtest's
first frame (hand-marked boxes), the same two breaking a no-parking rule in a replay, people
against vtest's ground truth, crops mapped back to the frame, and the model file the one
PROVENANCE.md names."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from edge.video import evaluate, replay
from edge.video.boxes import Box, iou_matrix
from edge.video.motion import Frame
from edge.video.objects import MODEL, VEHICLES, NanoDetector, expand
from polewatch.cli import main

# Hand-marked on frame 0 of vtest.avi (768x576): a white van and the front of a parked car.
VAN = Box(652, 44, 70, 56)
CAR = Box(734, 52, 34, 40)


@pytest.fixture(scope="module")
def first_frames(data_dir: Path) -> list[Frame]:
    return [img for _, img in replay.frames(data_dir / "video" / "vtest.avi", limit=10)]


def test_the_parked_vehicles_of_vtest_are_found_as_vehicles(first_frames: list[Frame]) -> None:
    detector = NanoDetector(["vehicle"])
    # A region around the kerb, as a track or the motion gate would give it.
    found = detector.detect(first_frames[0], [Box(600, 30, 168, 80)])
    assert found and all(b.label in VEHICLES for b in found)
    overlap = iou_matrix([VAN, CAR], found)
    assert overlap[0].max() >= 0.6 and overlap[1].max() >= 0.5
    # The same objects from a whole-frame search (the sweep), in frame coordinates.
    whole = detector.detect(first_frames[0], [Box(0, 0, 768, 576)])
    assert iou_matrix([VAN], whole).max() >= 0.6


def test_people_only_when_asked_and_measured_on_ground_truth(
    first_frames: list[Frame], data_dir: Path
) -> None:
    truth = evaluate.read_mot(data_dir / "video" / "vtest_gt_frames_001_050.txt")
    vehicles = NanoDetector(["vehicle"])
    people = NanoDetector(["person"])
    boxes = {}
    for i, image in enumerate(first_frames):
        assert all(b.label != "person" for b in vehicles.run(image))
        found = people.detect(image, [Box(0, 0, 768, 576)])
        assert {b.label for b in found} <= {"person"}
        boxes[i] = found
    quality = evaluate.detection_quality(boxes, {i: truth[i] for i in range(10)}, 0.5)
    # Whole frames squeezed to 416 px: the figures docs/edge-agents.md reports for 50 frames.
    assert quality["recall"] >= 0.7 and quality["precision"] >= 0.45


def test_classes_expand_and_nothing_is_found_in_an_empty_region(
    first_frames: list[Frame],
) -> None:
    assert expand(["vehicle", "person"]) == {"person", *VEHICLES}
    detector = NanoDetector(["car"])
    assert detector.detect(first_frames[0], []) == []
    assert detector.calls == 0
    assert detector.run(first_frames[0][:0]) == []


def test_the_model_is_the_vendored_file_named_in_its_provenance() -> None:
    provenance = (MODEL.parent / "PROVENANCE.md").read_text()
    sha = re.search(rf"{re.escape(MODEL.name)}\W+sha256\W+([0-9a-f]{{64}})", provenance)
    assert sha is not None
    assert hashlib.sha256(MODEL.read_bytes()).hexdigest() == sha.group(1)
    assert (MODEL.parent / "LICENSE").read_text().count("Apache License") >= 1


def test_parked_vehicles_of_vtest_break_a_no_parking_rule(data_dir: Path, tmp_path: Path) -> None:
    """Real footage, the real detector, the real rules: the van and the car parked at the kerb
    stand in a 5 s no-parking zone; the walkway, where only people go, stays quiet."""
    camera = tmp_path / "kerb.toml"
    camera.write_text(
        'id = "vtest"\nsource = "vtest.avi"\nlon = 114.05\nlat = 22.54\n'
        "[analysis]\nperson_min_height = 64\nperson_max_height = 240\n"
        '[detector]\nkind = "motion"\n[vehicles]\n'
        '[[rules]]\ntype = "no_parking"\nname = "kerb"\nstopped = 5\n'
        "polygon = [[600, 60], [768, 60], [768, 130], [600, 130]]\n"
        '[[rules]]\ntype = "no_parking"\nname = "walkway"\nstopped = 5\n'
        "polygon = [[0, 200], [768, 200], [768, 576], [0, 576]]\n"
    )
    out = tmp_path / "out.jsonl"
    video = data_dir / "video" / "vtest.avi"
    args = ["replay", str(video), "--camera", str(camera), "--out", str(out), "--frames", "80"]
    assert main([*args, "--json"]) == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    events = [x["event"] for x in lines if "event" in x]
    assert sorted((e["name"], e["class"]) for e in events) == [("kerb", "car"), ("kerb", "truck")]
    assert all(5.0 <= e["ts"] <= 6.5 for e in events)
    boxes = [Box(*e["box"]) for e in events]
    assert iou_matrix([VAN, CAR], boxes).max(axis=1).min() >= 0.5


def test_a_vehicle_model_path_is_checked_at_start_naming_the_key(tmp_path: Path) -> None:
    from edge.video import config as cfg

    camera = tmp_path / "cam.toml"
    camera.write_text(
        'id = "c"\nsource = "x"\nlon = 1\nlat = 1\n[vehicles]\nmodel = "missing.onnx"\n'
    )
    with pytest.raises(cfg.ConfigError, match=r"vehicles\.model: .*missing\.onnx does not exist"):
        cfg.load(camera)
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.onnx").write_bytes(MODEL.read_bytes())
    camera.write_text(camera.read_text().replace("missing.onnx", "models/mine.onnx"))
    loaded = cfg.load(camera)
    assert loaded.vehicles is not None and loaded.vehicles.model == str(
        tmp_path / "models/mine.onnx"
    )
