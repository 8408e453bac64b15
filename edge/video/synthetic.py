"""Synthetic camera scenes rendered with numpy/OpenCV: a textured background, person-like
figures walking given paths, and the tampering a camera suffers (covered, blurred, moved).
Tests and simulators use them where the expected alarms must be known exactly."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import cv2
import numpy as np

from edge.video.boxes import Point
from edge.video.motion import Frame


def background(width: int = 320, height: int = 240, seed: int = 7) -> Frame:
    """A sharp, textured, static scene (so blur and shifts are measurable)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 255, (height // 8, width // 8), dtype=np.uint8)
    img = cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    img = cv2.addWeighted(img, 0.5, np.full_like(img, 140), 0.5, 0)
    out: Frame = cv2.cvtColor(img, cv2.COLOR_GRAY2BGR)
    for _ in range(25):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = int(rng.integers(5, width // 6)), int(rng.integers(5, height // 6))
        colour = tuple(int(c) for c in rng.integers(0, 255, 3))
        cv2.rectangle(out, (x, y), (x + w, y + h), colour, int(rng.integers(1, 3)))
    return out


def figure(image: Frame, foot: Point, height: float = 60.0) -> None:
    """Draw a person-like figure standing at ``foot`` (bottom centre), in place: a head and a
    body in dark, patterned clothes (texture, as real clothes have, keeps a background model
    from absorbing a figure that moves slowly)."""
    x, y = foot
    w = max(4, int(height * 0.35))
    h = max(8, int(height * 0.8))
    x0, y0 = int(x - w / 2), int(y - h)
    ih, iw = image.shape[:2]
    pattern = _CLOTHES[:h, :w]
    if pattern.shape[:2] != (h, w):
        pattern = cv2.resize(_CLOTHES, (w, h), interpolation=cv2.INTER_NEAREST)
    cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(iw, x0 + w), min(ih, y0 + h)
    if cx1 > cx0 and cy1 > cy0:
        image[cy0:cy1, cx0:cx1] = pattern[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    cv2.circle(
        image, (int(x), int(y - height * 0.88)), max(2, int(height * 0.11)), (40, 50, 70), -1
    )


_CLOTHES: Frame = cv2.resize(
    np.random.default_rng(3).integers(10, 110, (40, 16, 3), dtype=np.uint8),
    (64, 160),
    interpolation=cv2.INTER_NEAREST,
)


def walk(start: Point, end: Point, frames: int) -> list[Point]:
    """Evenly spaced foot positions from ``start`` to ``end``."""
    return [
        (
            start[0] + (end[0] - start[0]) * i / max(1, frames - 1),
            start[1] + (end[1] - start[1]) * i / max(1, frames - 1),
        )
        for i in range(frames)
    ]


def scene(
    paths: Sequence[Sequence[Point | None]],
    *,
    base: Frame | None = None,
    height: float = 60.0,
    lead: int = 60,
) -> list[Frame]:
    """Frames of figures following ``paths`` (one foot point per frame, None: absent), after
    ``lead`` empty frames so a background model can learn the scene."""
    base = background() if base is None else base
    length = max((len(p) for p in paths), default=0)
    out = [base.copy() for _ in range(lead)]
    for i in range(length):
        img = base.copy()
        for path in paths:
            if i < len(path) and path[i] is not None:
                figure(img, path[i], height)  # type: ignore[arg-type]
        out.append(img)
    return out


def covered(image: Frame) -> Frame:
    """What a camera sees with a hand or a bag over its lens."""
    out: Frame = (cv2.GaussianBlur(image, (0, 0), 25) * 0.08).astype(np.uint8)
    return out


def blurred(image: Frame) -> Frame:
    """Out of focus, or sprayed."""
    out: Frame = cv2.GaussianBlur(image, (0, 0), 4)
    return out


def shifted(image: Frame, dx: int, dy: int = 0) -> Frame:
    """The view after the camera was turned: the scene moved by ``dx, dy`` pixels."""
    m = np.array([[1, 0, dx], [0, 1, dy]], dtype=np.float32)
    out: Frame = cv2.warpAffine(
        image, m, (image.shape[1], image.shape[0]), borderMode=cv2.BORDER_REFLECT
    )
    return out


def write(path: str | Path, frames: Iterable[Frame], fps: float = 10.0) -> Path:
    """Write frames as an MJPEG AVI (what the capture and replay read back)."""
    path = Path(path)
    writer: cv2.VideoWriter | None = None
    try:
        for img in frames:
            if writer is None:
                h, w = img.shape[:2]
                writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (w, h))
            writer.write(img)
    finally:
        if writer is not None:
            writer.release()
    return path
