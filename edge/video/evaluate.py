"""Detection quality against MOT-format ground truth, and tripwire counts from its tracks.

MOT rows are ``frame,id,left,top,width,height,considered,...`` with 1-based frames (GT frame
``f`` is video frame ``f - 1``); rows with ``considered == 0`` neither need finding nor count
against a detection that covers them.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from edge.video import config as cfg
from edge.video.boxes import Box, iou_matrix
from edge.video.rules import Tripwire
from edge.video.scene import Scene
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
        except (ValueError, IndexError, OverflowError):
            raise GroundTruthError(
                f"{path}:{n}: expected frame,id,left,top,width,height,..."
            ) from None
        if frame < 1 or not (w > 0 and h > 0 and math.isfinite(x + y + w + h)):
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
        tracks = [Track(ident, box, f, confirmed=True) for ident, box, _ in truth[f]]
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


def read_crossings(path: str | Path) -> tuple[range, list[tuple[int, str, str]]]:
    """Hand-annotated tripwire crossings: ``# frames: FIRST-LAST`` then ``frame,rule,direction``
    rows (a header row and ``#`` comments are skipped). Returns the annotated frame range and
    the crossings."""
    frames: range | None = None
    rows: list[tuple[int, str, str]] = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        text = line.strip()
        if text.startswith("# frames:"):
            try:
                first, last = (int(v) for v in text.split(":", 1)[1].split("-"))
            except ValueError:
                raise GroundTruthError(f"{path}:{n}: expected '# frames: FIRST-LAST'") from None
            frames = range(first, last + 1)
            continue
        if not text or text.startswith("#") or text.startswith("frame,"):
            continue
        parts = [p.strip() for p in text.split(",")]
        if len(parts) != 3 or not parts[0].isdigit() or parts[2] not in ("a_to_b", "b_to_a"):
            raise GroundTruthError(f"{path}:{n}: expected frame,rule,a_to_b|b_to_a")
        rows.append((int(parts[0]), parts[1], parts[2]))
    if frames is None:
        raise GroundTruthError(f"{path}: no '# frames: FIRST-LAST' line")
    return frames, rows


def crossing_counts(
    truth: tuple[range, list[tuple[int, str, str]]], events: Iterable[tuple[int, dict[str, Any]]]
) -> dict[str, Any]:
    """Per rule and direction: annotated crossings against tripwire events, in the range."""
    frames, rows = truth
    events = list(events)
    out: dict[str, Any] = {"frames": [frames.start, frames.stop - 1]}
    for name in sorted({r for _, r, _ in rows}):
        want = Counter(d for f, r, d in rows if r == name and f in frames)
        got = count_events(events, name, frames)
        out[name] = {"truth": dict(want), "found": dict(got)}
    return out
