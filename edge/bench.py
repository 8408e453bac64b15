"""``polewatch bench edge``: the video pipeline's speed on one core against decoding alone.

Both run over the same file in the same process (``cv2.setNumThreads(1)``), so the ratio holds
on a busy machine where absolute figures drift.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import cv2
import msgspec

from edge.video import config as cfg
from edge.video import pipeline, replay

ROOT = Path(__file__).resolve().parent.parent
VIDEO = ROOT.parent / "shared" / "data" / "video" / "vtest.avi"
CAMERA = ROOT / "edge" / "video" / "vtest.toml"


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Decode-only and full-pipeline frames per second over vtest.avi at its own 768x576."""
    cv2.setNumThreads(1)
    limit = 200 if getattr(args, "quick", False) else None
    config = cfg.load(CAMERA)

    start = time.perf_counter()
    decoded = sum(1 for _ in replay.frames(VIDEO, limit=limit))
    decode_s = time.perf_counter() - start

    analyzer = pipeline.build(config)
    analysed, events, pipeline_s, image = _pipeline(analyzer, limit)
    detector_px = getattr(analyzer.detector, "pixels", None)
    h, w = image.shape[:2]

    decode_fps = decoded / decode_s
    pipeline_fps = analysed / pipeline_s
    return {
        "video": VIDEO.name,
        "resolution": f"{w}x{h}",
        "frames": analysed,
        "threads": cv2.getNumThreads(),
        "decode_fps": round(decode_fps, 1),
        "pipeline_fps": round(pipeline_fps, 1),
        "pipeline_ms_per_frame": round(1000 * pipeline_s / analysed, 2),
        "ratio_pipeline_to_decode": round(pipeline_fps / decode_fps, 4),
        "cameras_at_10fps_per_core": round(pipeline_fps / 10.0, 1),
        "motion_gate": analyzer.gate.as_dict(),
        "detector_pixels_per_frame_vs_frame": (
            round(detector_px / analysed / (w * h), 3) if detector_px is not None else None
        ),
        "events": events,
        "vehicles": _with_vehicles(config, limit, pipeline_fps),
    }


def _pipeline(analyzer: pipeline.Analyzer, limit: int | None) -> tuple[int, int, float, Any]:
    """Frames analysed, events, seconds, and the last frame of one run over vtest."""
    events = analysed = 0
    image = None
    start = time.perf_counter()
    for index, image in replay.frames(VIDEO, limit=limit):
        events += len(analyzer.analyse(image, index, index / 10.0).events)
        analysed += 1
    return analysed, events, time.perf_counter() - start, image


def _with_vehicles(
    config: cfg.CameraConfig, limit: int | None, people_fps: float
) -> dict[str, Any]:
    """The same run with the vendored COCO vehicle detector on (``[vehicles]`` defaults: every
    0.5 s on the motion regions and vehicle tracks): its cost beside people only."""
    config = msgspec.structs.replace(config, vehicles=cfg.VehicleConfig())
    analyzer = pipeline.build(config)
    analysed, _, seconds, _ = _pipeline(analyzer, limit)
    fps = analysed / seconds
    runs = getattr(analyzer.vehicles, "calls", 0)
    model_s = getattr(analyzer.vehicles, "seconds", 0.0)
    return {
        "interval_s": config.vehicles.interval if config.vehicles else None,
        "pipeline_fps": round(fps, 1),
        "ratio_to_people_only": round(fps / people_fps, 3),
        "detector_runs_per_frame": round(runs / analysed, 3),
        "detector_ms_per_run": round(1000 * model_s / runs, 1) if runs else None,
        "detector_ms_per_frame": round(1000 * model_s / analysed, 2),
        "vehicle_tracks": analyzer.vehicle_tracker.created,
    }
