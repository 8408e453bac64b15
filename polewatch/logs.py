"""Logging, set up once per process: JSON lines when stderr is not a terminal, plain text when
it is."""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD:
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup(service: str, level: str = "INFO", *, json_output: bool | None = None) -> None:
    """Configure the root logger for ``service``; call once, at start."""
    handler = logging.StreamHandler(sys.stderr)
    if json_output is None:
        json_output = not sys.stderr.isatty()
    if json_output:
        handler.setFormatter(JsonFormatter(service))
    else:
        fmt = f"%(asctime)s {service} %(levelname)s %(name)s: %(message)s"
        handler.setFormatter(logging.Formatter(fmt, "%H:%M:%S"))
        logging.Formatter.converter = time.localtime
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
