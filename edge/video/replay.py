"""Offline replay: a camera's pipeline over a video file, as fast as it goes, to JSON lines.

One line per analysed frame, ``{"frame": i, "boxes": [[x, y, w, h, score], ...]}`` in the
video's own pixels (with ``"labels": ["person", "car", ...]`` beside the boxes when a camera
looks for vehicles and found one), and one per event, ``{"frame": i, "event": {...}}``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TypeAlias

import cv2

from edge.video import config as cfg
from edge.video import pipeline
from edge.video.boxes import Box
from edge.video.motion import Frame

Observer: TypeAlias = Callable[[Frame, pipeline.Result, pipeline.Analyzer], None]


class VideoError(OSError):
    """The video file cannot be opened or decoded."""


def frames(
    path: str | Path, *, stride: int = 1, limit: int | None = None
) -> Iterator[tuple[int, Frame]]:
    """``(0-based index, BGR frame)`` of every ``stride``-th frame of a video file."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    if not cap.isOpened():
        raise VideoError(f"cannot open video {path}")
    try:
        index = 0
        while limit is None or index < limit:
            if index % stride:
                if not cap.grab():
                    break
            else:
                ok, image = cap.read()
                if not ok:
                    break
                yield index, image
            index += 1
    finally:
        cap.release()


def frame_count(path: str | Path) -> int:
    """The frame count the container declares (0 when it does not say)."""
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        return max(0, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()


def video_fps(path: str | Path) -> float:
    cap = cv2.VideoCapture(str(path), cv2.CAP_FFMPEG)
    try:
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
    finally:
        cap.release()
    return fps if 0.5 < fps < 500 else 0.0


@dataclass
class Replay:
    """What a replay produced (kept for ``--eval``)."""

    boxes: dict[int, list[Box]] = field(default_factory=dict)
    events: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    fps: float = 0.0
    gate: dict[str, float] = field(default_factory=dict)


def run(
    video: str | Path,
    config: cfg.CameraConfig,
    out: IO[str] | None = None,
    *,
    limit: int | None = None,
    observe: Observer | None = None,
) -> Replay:
    """Replay ``video`` through ``config``'s pipeline, writing JSON lines to ``out``;
    ``observe`` sees every analysed frame with its result (the annotated video, progress)."""
    fps = video_fps(video) or config.analysis.fps
    stride = max(1, round(fps / config.analysis.fps))
    analyzer = pipeline.build(config)
    result = Replay(fps=fps)
    for index, image in frames(video, stride=stride, limit=limit):
        r = analyzer.analyse(image, index, index / fps)
        if observe is not None:
            observe(image, r, analyzer)
        result.boxes[index] = r.boxes
        if out is not None:
            line: dict[str, Any] = {"frame": index, "boxes": [b.as_list() for b in r.boxes]}
            if any(b.label != "person" for b in r.boxes):
                line["labels"] = [b.label for b in r.boxes]  # only with [vehicles]
            out.write(json.dumps(line) + "\n")
        for e in r.events:
            event = e.to_json()
            result.events.append((index, event))
            if out is not None:
                out.write(json.dumps({"frame": index, "event": event}) + "\n")
    result.gate = analyzer.gate.as_dict()
    return result
