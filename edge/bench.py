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
    events = 0
    start = time.perf_counter()
    analysed = 0
    for index, image in replay.frames(VIDEO, limit=limit):
        events += len(analyzer.analyse(image, index, index / 10.0).events)
        analysed += 1
    pipeline_s = time.perf_counter() - start
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
    }
