"""Tracking with stable ids: a small SORT-style tracker.

Each track predicts its box with a constant-velocity step; predictions are matched to the
detector's boxes by Hungarian assignment (``scipy.optimize.linear_sum_assignment``) on a cost
mixing IoU and centre distance. A confirmed track that misses a detection is still reported at
its predicted place for ``coast`` frames. Measured on PETS09 (vtest frames 0-49, with OpenCV's
window grouping): a coast of 1, 2 and 4 frames gave precision/recall 0.93/0.72, 0.91/0.73 and
0.86/0.74, so the agent coasts 0.2 s; matching weak
detections (person-shaped motion blobs, or HOG windows below its threshold) to existing tracks,
ByteTrack-style, gained no recall and cost precision, so neither is done.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from edge.video.boxes import Box, Point, iou_matrix

_NO_MATCH = 1e6


@dataclass
class Track:
    """One person followed across frames."""

    id: int
    box: Box
    first_frame: int
    velocity: tuple[float, float] = (0.0, 0.0)
    hits: int = 1
    misses: int = 0
    """Frames since the last matched detection (0: seen in this frame)."""
    confirmed: bool = False
    score: float = 0.0
    feet: list[tuple[int, Point]] = field(default_factory=list)
    """``(frame, foot point)`` of the recent frames, newest last (rules read it)."""

    def predicted(self) -> Box:
        vx, vy = self.velocity
        b = self.box
        return Box(b.x + vx, b.y + vy, b.w, b.h, b.score, b.label)

    @property
    def label(self) -> str:
        """The object's class, as last detected."""
        return self.box.label


class Tracker:
    """SORT-style multi-object tracker.

    ``confirm_hits``: matched frames before a track counts; ``max_misses``: frames a track may go
    unseen before it is dropped; ``coast``: frames an unseen confirmed track is still reported at
    its predicted place; ``at_once``: detector score of a first sighting reported at once (rules
    still wait for confirmation).
    """

    def __init__(
        self,
        *,
        confirm_hits: int = 2,
        max_misses: int = 15,
        coast: int = 4,
        min_iou: float = 0.1,
        at_once: float = 2.0,
        first_id: int = 1,
    ) -> None:
        self.confirm_hits = confirm_hits
        self.max_misses = max_misses
        self.coast = coast
        self.min_iou = min_iou
        self.at_once = at_once
        """A first sighting scoring at least this is reported before it is confirmed."""
        self.tracks: list[Track] = []
        self._first_id = first_id
        self._next_id = first_id

    @property
    def created(self) -> int:
        """Tracks started so far."""
        return self._next_id - self._first_id

    def update(self, frame: int, detections: Sequence[Box]) -> list[Track]:
        """Advance one frame; returns the tracks to report (confirmed, seen or coasting)."""
        for t in self.tracks:
            t.box = t.predicted()
            t.misses += 1
        unmatched = self._match(self.tracks, detections, frame)
        for i in unmatched:
            box = detections[i]
            self.tracks.append(
                Track(self._next_id, box, frame, score=box.score, feet=[(frame, box.foot)])
            )
            self._next_id += 1
        self.tracks = [t for t in self.tracks if t.misses <= self.max_misses]
        for t in self.tracks:
            if t.hits >= self.confirm_hits:
                t.confirmed = True
        return [
            t
            for t in self.tracks
            if (t.confirmed and t.misses <= self.coast)
            or (t.hits == 1 and not t.misses and t.score >= self.at_once)
        ]

    def _match(self, tracks: Sequence[Track], boxes: Sequence[Box], frame: int) -> list[int]:
        """Assign ``boxes`` to ``tracks``, update the matched; return unmatched box indexes."""
        if not boxes:
            return []
        if not tracks:
            return list(range(len(boxes)))
        cost = self._cost([t.box for t in tracks], boxes, min_iou=self.min_iou)
        rows, cols = linear_sum_assignment(cost)
        taken = set()
        for r, c in zip(rows, cols, strict=True):
            if cost[r, c] >= _NO_MATCH:
                continue
            taken.add(int(c))
            self._apply(tracks[r], boxes[c], frame)
        return [i for i in range(len(boxes)) if i not in taken]

    @staticmethod
    def _cost(
        predicted: Sequence[Box], boxes: Sequence[Box], *, min_iou: float
    ) -> npt.NDArray[np.float64]:
        iou = iou_matrix(predicted, boxes)
        pc = np.array([b.centre for b in predicted])
        bc = np.array([b.centre for b in boxes])
        ph = np.array([b.h for b in predicted])[:, None]
        dist = np.hypot(pc[:, None, 0] - bc[None, :, 0], pc[:, None, 1] - bc[None, :, 1]) / ph
        cost = (1.0 - iou) + 0.5 * np.minimum(dist, 1.0)
        gated: npt.NDArray[np.float64] = np.where((iou >= min_iou) | (dist < 0.3), cost, _NO_MATCH)
        return gated

    def _apply(self, track: Track, box: Box, frame: int) -> None:
        old = track.box
        gap = track.misses  # frames since the last match, counting this one
        # Smooth the size; detections jitter by a few pixels from frame to frame.
        w = 0.6 * box.w + 0.4 * old.w
        h = 0.6 * box.h + 0.4 * old.h
        cx, cy = box.centre
        box = Box(cx - w / 2, cy - h / 2, w, h, box.score, box.label)
        track.hits += 1
        track.score = 0.7 * track.score + 0.3 * box.score
        prev = track.feet[-1] if track.feet else (frame - gap, old.foot)
        steps = max(1, frame - prev[0])
        vx = (box.foot[0] - prev[1][0]) / steps
        vy = (box.foot[1] - prev[1][1]) / steps
        track.velocity = (
            0.5 * track.velocity[0] + 0.5 * vx,
            0.5 * track.velocity[1] + 0.5 * vy,
        )
        track.box = box
        track.misses = 0
        track.feet.append((frame, box.foot))
        del track.feet[:-50]
