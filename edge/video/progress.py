"""Progress of a long run on a terminal: frames done, frames per second, time left.

One line, rewritten in place on stderr, and only when stderr is a terminal: a piped or
redirected run (and ``--json``) stays quiet.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """``tick()`` once per unit of work; ``done()`` at the end."""

    def __init__(
        self,
        total: int | None,
        *,
        what: str = "frames",
        stream: TextIO | None = None,
        enabled: bool | None = None,
        every: float = 0.25,
    ) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total = total if total and total > 0 else None
        self.what = what
        self.count = 0
        self.every = every
        self._start = time.monotonic()
        self._shown = 0.0

    def line(self) -> str:
        """The line shown now, e.g. ``frames 120/795  41.8 fps  0:16 left``."""
        elapsed = max(1e-9, time.monotonic() - self._start)
        rate = self.count / elapsed
        done = f"{self.count}/{self.total}" if self.total else str(self.count)
        text = f"{self.what} {done}  {rate:.1f} fps"
        if self.total and rate > 0:
            left = max(0, round((self.total - self.count) / rate))
            text += f"  {left // 60}:{left % 60:02d} left"
        return text

    def tick(self, n: int = 1) -> None:
        self.count += n
        now = time.monotonic()
        if self.enabled and now - self._shown >= self.every:
            self._shown = now
            self.stream.write("\r" + self.line() + "\x1b[K")
            self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + self.line() + "\x1b[K\n")
            self.stream.flush()
