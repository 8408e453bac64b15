"""The video agent's camera files: one TOML file per camera, read and validated once at start.

The schema (the structs, :func:`parse`, :func:`loads`, :func:`dumps`, :class:`ConfigError`)
is the shared core's :mod:`polewatch.camera_schema`, which the gateway's editor validates with
too; its names are re-exported here for the agent's modules. This module adds what only the
agent does: reading a file and finding the model files it names next to it.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import msgspec

from polewatch.camera_schema import (
    Analysis,
    CameraConfig,
    ClassName,
    ConfigError,
    CrowdRule,
    DetectorConfig,
    LoiteringRule,
    MotionRule,
    NoParkingRule,
    OfflineRule,
    RuleConfig,
    TamperRule,
    TripwireRule,
    VehicleConfig,
    ZoneRule,
    dumps,
    loads,
    parse,
    toml_table,
    toml_value,
)

__all__ = [
    "Analysis",
    "CameraConfig",
    "ClassName",
    "ConfigError",
    "CrowdRule",
    "DetectorConfig",
    "LoiteringRule",
    "MotionRule",
    "NoParkingRule",
    "OfflineRule",
    "RuleConfig",
    "TamperRule",
    "TripwireRule",
    "VehicleConfig",
    "ZoneRule",
    "dumps",
    "loads",
    "parse",
    "toml_table",
    "toml_value",
    "load",
]


def load(path: str | Path) -> CameraConfig:
    """Read and validate one camera's TOML file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"camera config {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"camera config {path} is not valid TOML: {exc}") from None
    config = parse(data, where=str(path))
    if config.detector.kind == "onnx" and config.detector.model:
        model = _model(path, config.detector.model, "detector.model")
        config = msgspec.structs.replace(
            config, detector=msgspec.structs.replace(config.detector, model=model)
        )
    if config.vehicles is not None and config.vehicles.model:
        model = _model(path, config.vehicles.model, "vehicles.model")
        config = msgspec.structs.replace(
            config, vehicles=msgspec.structs.replace(config.vehicles, model=model)
        )
    return config


def _model(config_path: Path, value: str, key: str) -> str:
    """A model file named in a config, relative to the config's folder; it must exist."""
    model = Path(value)
    if not model.is_absolute():
        model = config_path.parent / model
    if not model.is_file():
        raise ConfigError(f"{config_path}: {key}: {model} does not exist")
    return str(model)
