"""Detection quality against MOT-format ground truth, and tripwire counts from its tracks.

MOT rows are ``frame,id,left,top,width,height,considered,...`` with 1-based frames (GT frame
``f`` is video frame ``f - 1``); rows with ``considered == 0`` neither need finding nor count
against a detection that covers them.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.video import config as cfg
from edge.video.boxes import Box, iou_matrix
from edge.video.rules import Scene, Tripwire
from edge.video.track import Track


class GroundTruthError(ValueError):
    """The ground-truth file is malformed; the message names the line."""


def read_mot(path: str | Path) -> dict[int, list[tuple[int, Box, bool]]]:
    """``{0-based video frame: [(track id, box, considered), ...]}``."""
    out: dict[int, list[tuple[int, Box, bool]]] = defaultdict(list)
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.replace(" ", "").split(",")
        try:
            frame, ident = int(float(parts[0])), int(float(parts[1]))
            x, y, w, h = (float(v) for v in parts[2:6])
            considered = len(parts) < 7 or float(parts[6]) != 0.0
        except (ValueError, IndexError):
            raise GroundTruthError(
                f"{path}:{n}: expected frame,id,left,top,width,height,..."
            ) from None
        if frame < 1 or w <= 0 or h <= 0:
            raise GroundTruthError(f"{path}:{n}: frame must be >= 1 and the box non-empty")
        out[frame - 1].append((ident, Box(x, y, w, h), considered))
    return dict(out)


def match(
    found: Sequence[Box], truth: Sequence[tuple[int, Box, bool]], iou: float = 0.5
) -> tuple[int, int, int]:
    """``(true positives, false positives, false negatives)`` of one frame, one-to-one
    matching that maximises total IoU among pairs at or above ``iou``."""
    if not found or not truth:
        return 0, len(found), sum(1 for _, _, c in truth if c)
    m = iou_matrix(found, [b for _, b, _ in truth])
    rows, cols = linear_sum_assignment(-np.where(m >= iou, m, 0.0))
    tp = fp_ignored = 0
    matched_truth = set()
    for r, c in zip(rows, cols, strict=True):
        if m[r, c] >= iou:
            matched_truth.add(int(c))
            if truth[c][2]:
                tp += 1
            else:
                fp_ignored += 1
    fp = len(found) - tp - fp_ignored
    fn = sum(1 for i, (_, _, c) in enumerate(truth) if c and i not in matched_truth)
    return tp, fp, fn


def detection_quality(
    found: Mapping[int, Sequence[Box]],
    truth: Mapping[int, Sequence[tuple[int, Box, bool]]],
    iou: float = 0.5,
) -> dict[str, Any]:
    """Precision and recall over the frames that have ground truth and were analysed."""
    tp = fp = fn = 0
    frames = sorted(f for f in truth if f in found)
    for f in frames:
        a, b, c = match(found[f], truth[f], iou)
        tp, fp, fn = tp + a, fp + b, fn + c
    return {
        "frames": len(frames),
        "iou": iou,
        "truth": tp + fn,
        "found": tp + fp,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(tp / (tp + fn), 4) if tp + fn else None,
    }


def tripwire_truth(
    rule: cfg.TripwireRule, truth: Mapping[int, Sequence[tuple[int, Box, bool]]], fps: float
) -> Counter[str]:
    """Crossings of the tripwire by the ground-truth tracks (the same rule code, run on them)."""
    wire = Tripwire("truth", msgspec_replace_cooldown(rule))
    counts: Counter[str] = Counter()
    for f in sorted(truth):
        tracks = [Track(ident, box, f) for ident, box, _ in truth[f]]
        for e in wire.update(Scene(f, f / fps, tracks)):
            counts[str(e.detail["direction"])] += 1
    return counts


def msgspec_replace_cooldown(rule: cfg.TripwireRule) -> cfg.TripwireRule:
    import msgspec

    return msgspec.structs.replace(rule, cooldown=0.0, direction="any")


def count_events(
    events: Iterable[tuple[int, dict[str, Any]]], name: str, frames: range
) -> Counter[str]:
    counts: Counter[str] = Counter()
    for frame, event in events:
        if event.get("name") == name and frame in frames:
            counts[str(event["direction"])] += 1
    return counts
