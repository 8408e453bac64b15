"""The camera configuration schema, shared by the video agent (which runs it) and the gateway
(whose editor validates an operator's edit): one TOML table per camera, validated once.

Every error names the key it is about (``rules[2].line: expected two points``) and is raised as
:class:`ConfigError`. Coordinates of zones, lines and masks are pixels of the camera's own
frames (what ``polewatch replay`` prints), whatever resolution the analysis runs at. Reading a
camera's file from disk (and the model files it names) is the agent's:
:func:`edge.video.config.load`.
"""

from __future__ import annotations

import json
import re
import tomllib
from typing import Annotated, Any, Literal, TypeAlias

import msgspec
from msgspec import Meta

from polewatch.wire import PoleRef

Coord = Annotated[float, Meta(ge=-100_000.0, le=100_000.0)]
PointT: TypeAlias = tuple[Coord, Coord]
Seconds = Annotated[float, Meta(ge=0.0, le=86_400.0)]
Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@#/-]+$")]
ClassName: TypeAlias = Literal["person", "bicycle", "car", "motorbike", "bus", "truck", "vehicle"]
"""What a rule is about; ``vehicle`` is every vehicle class."""
_SCHEDULE = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-4]):([0-5]\d)$")


class ConfigError(ValueError):
    """The camera configuration is invalid; the message names the key."""


class _Strict(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class Analysis(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """How the frames are analysed."""

    width: Annotated[int, Meta(ge=0, le=8192)] = 0
    """Analysis width in pixels (height keeps the aspect); 0: the source's own."""
    fps: Annotated[float, Meta(gt=0.0, le=120.0)] = 10.0
    """Frames analysed per second; the capture drops the others."""
    motion_width: Annotated[int, Meta(ge=32, le=1920)] = 256
    """About the width the motion gate works at (the frame shrinks by a whole factor). Coarse
    is better as well as cheaper: on vtest 256 px found more people than 384 (whole bodies in
    one blob) and more than 192 (small people lost)."""
    motion_mask: list[list[PointT]] = []
    """Polygons where motion is ignored (trees, a busy road)."""
    person_min_height: Annotated[float, Meta(ge=16.0, le=4096.0)] = 48.0
    person_max_height: Annotated[float, Meta(ge=16.0, le=8192.0)] = 400.0
    sweep: Seconds = 10.0
    """Every so many seconds (and at start) the detector searches the whole frame, to find
    people standing still; 0: never."""


class DetectorConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The people detector."""

    kind: Literal["hog", "onnx", "motion", "nanodet"] = "hog"
    """``hog``: OpenCV's people detector; ``onnx``: a YOLO-style model at ``model``;
    ``motion``: every moving blob counts as a person; ``nanodet``: the vendored COCO model."""
    model: str | None = None
    """Path of the ONNX model (kind ``onnx``); read from disk, never downloaded."""
    threshold: Annotated[float, Meta(ge=-10.0, le=10.0)] | None = None
    """Detection threshold: HOG's SVM margin (default 0.5), the ONNX model's score (0.4)."""
    input_size: Annotated[int, Meta(ge=32, le=4096)] = 640


class VehicleConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The vehicle detector (``[vehicles]``; without the table no vehicle is looked for)."""

    kind: Literal["nanodet", "motion"] = "nanodet"
    """``nanodet``: the vendored COCO model (edge/video/models); ``motion``: every moving blob
    wider than tall is a car (synthetic scenes)."""
    classes: list[ClassName] = msgspec.field(default_factory=lambda: ["vehicle"])
    threshold: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.35
    interval: Annotated[float, Meta(ge=0.0, le=60.0)] = 0.5
    """Seconds between detector runs (the budget); tracks hold their place in between."""
    min_size: Annotated[float, Meta(ge=4.0, le=4096.0)] = 16.0
    """Smallest vehicle side worth reporting, in source pixels."""
    model: str | None = None
    """Another NanoDet-style ONNX file; default: the vendored model."""


class _Rule(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True, tag_field="type"):
    name: Name | None = None
    cooldown: Seconds = 30.0
    """Seconds during which the rule does not raise the same alarm again."""


class ZoneRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="zone"):
    """Someone enters the polygon (during the schedule, if any)."""

    polygon: list[PointT]
    schedule: list[str] = []
    """Windows ``HH:MM-HH:MM`` in the camera's time zone; may cross midnight."""
    classes: list[ClassName] = msgspec.field(default_factory=lambda: ["person"])
    """What counts: ``["vehicle"]`` makes a pedestrian-only zone."""


class TripwireRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="tripwire"):
    """Someone's feet cross the line; side a is on the left walking from its first point to
    its second as seen on screen."""

    line: list[PointT]
    direction: Literal["a_to_b", "b_to_a", "any"] = "any"
    cooldown: Seconds = 2.0
    classes: list[ClassName] = msgspec.field(default_factory=lambda: ["person"])
    """What counts: ``["vehicle"]`` with a direction is a one-way street's wrong way."""


class LoiteringRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="loitering"):
    polygon: list[PointT]
    dwell: Seconds = 30.0
    classes: list[ClassName] = msgspec.field(default_factory=lambda: ["person"])


class CrowdRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="crowd"):
    min_people: Annotated[int, Meta(ge=2, le=1000)] = 5
    duration: Seconds = 10.0
    polygon: list[PointT] | None = None
    classes: list[ClassName] = msgspec.field(default_factory=lambda: ["person"])


class TamperRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="tamper"):
    """Lens covered, view blurred or camera moved, lasting ``duration`` seconds."""

    duration: Seconds = 3.0
    blur_ratio: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.35
    shift: Annotated[float, Meta(gt=0.0, lt=1.0)] = 0.05
    """Global shift, as a fraction of the frame width, that counts as moved."""


class OfflineRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="offline"):
    after: Seconds = 30.0
    """Seconds offline (or stalled) before the alarm."""


class MotionRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="motion"):
    """Anything moving over ``area`` of the polygon (the whole frame without one) for
    ``duration`` seconds, during the schedule; ``analysis.motion_mask`` is never motion."""

    polygon: list[PointT] | None = None
    area: Annotated[float, Meta(gt=0.0, le=1.0)] = 0.02
    """Share of the polygon that must move."""
    duration: Seconds = 1.0
    schedule: list[str] = []


class NoParkingRule(_Rule, frozen=True, kw_only=True, forbid_unknown_fields=True, tag="no_parking"):
    """A vehicle stands still inside the polygon for ``stopped`` seconds (once per stop)."""

    polygon: list[PointT]
    stopped: Seconds = 60.0
    tolerance: Annotated[float, Meta(gt=0.0, le=2.0)] = 0.3
    """Movement, as a share of the vehicle's width, that still counts as standing."""
    classes: list[ClassName] = msgspec.field(default_factory=lambda: ["vehicle"])
    schedule: list[str] = []


RuleConfig: TypeAlias = (
    ZoneRule
    | TripwireRule
    | LoiteringRule
    | CrowdRule
    | TamperRule
    | OfflineRule
    | MotionRule
    | NoParkingRule
)


class CameraConfig(_Strict, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One camera: where its frames come from, where it stands, what to look for."""

    id: Name
    source: Annotated[str, Meta(min_length=1)]
    """RTSP / HTTP(S) MJPEG URL, a file path, or a local device (``0``, ``/dev/video0``)."""
    pole: PoleRef | None = None
    """Pole code; its place, district and grid come from the pole registry."""
    lon: Annotated[float, Meta(ge=-180.0, le=180.0)] | None = None
    lat: Annotated[float, Meta(ge=-90.0, le=90.0)] | None = None
    district: str | None = None
    grid: Name | None = None
    timezone: str = "UTC"
    analysis: Analysis = Analysis()
    detector: DetectorConfig = DetectorConfig()
    vehicles: VehicleConfig | None = None
    rules: list[RuleConfig] = []

    def rule_name(self, index: int) -> str:
        rule = self.rules[index]
        return rule.name or f"{type(rule).__struct_config__.tag}-{index}"


def parse(data: dict[str, Any], *, where: str = "camera config") -> CameraConfig:
    """Validate a decoded TOML table; :class:`ConfigError` names the offending key."""
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a table")
    try:
        config = msgspec.convert(data, CameraConfig, strict=True)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {_explain(str(exc))}") from None
    problems = list(_check(config))
    if problems:
        raise ConfigError(f"{where}: " + "; ".join(problems))
    return config


def loads(text: str, *, where: str = "camera config") -> CameraConfig:
    """Validate a camera's TOML text (what the configuration API receives)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}") from None
    return parse(data, where=where)


def dumps(config: CameraConfig) -> str:
    """The TOML text of ``config`` (what :func:`loads` reads back to an equal config); the
    comments of a hand-written file are not kept."""
    data: dict[str, Any] = msgspec.to_builtins(config)
    scalars = {k: v for k, v in data.items() if not isinstance(v, dict) and k != "rules"}
    parts = [toml_table("", scalars)]
    parts += [toml_table(f"[{k}]", v) for k, v in data.items() if isinstance(v, dict)]
    parts += [toml_table("[[rules]]", rule) for rule in data.get("rules", [])]
    return "\n".join(parts)


def toml_value(value: object) -> str:
    """A TOML literal of a string, number, bool or (nested) list. JSON's string escapes are
    valid TOML basic strings, except that TOML also wants DEL escaped."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return json.dumps(value, ensure_ascii=False).replace("\x7f", "\\u007f")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML literal for {value!r}")


def toml_table(header: str, table: dict[str, Any]) -> str:
    """``[header]`` (or the top level when empty) with ``key = value`` lines."""
    lines = [header] if header else []
    lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if v is not None]
    return "\n".join(lines) + "\n"


def _explain(message: str) -> str:
    """``Expected `int`, got `str` - at `$.rules[2].line[0]``` -> ``rules[2].line[0]: ...``."""
    match = re.search(r" - at `\$(?P<path>[^`]*)`$", message)
    if not match:
        return message
    path = match.group("path").lstrip(".")
    what = message[: match.start()]
    return f"{path or '(top level)'}: {what}"


def _check(config: CameraConfig) -> list[str]:
    out = []
    for i, poly in enumerate(config.analysis.motion_mask):
        if len(poly) < 3:
            out.append(f"analysis.motion_mask[{i}]: a polygon needs at least three points")
    a = config.analysis
    if a.person_min_height > a.person_max_height:
        out.append("analysis.person_min_height: larger than person_max_height")
    if config.detector.kind == "onnx" and not config.detector.model:
        out.append("detector.model: required when detector.kind is 'onnx'")
    if config.pole is None and (config.lon is None or config.lat is None):
        out.append("pole: give a pole code, or lon and lat")
    if (config.lon is None) != (config.lat is None):
        out.append("lon/lat: give both or neither")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(config.timezone)
    except (ValueError, KeyError, OSError):
        out.append(f"timezone: unknown time zone {config.timezone!r}")
    names: set[str] = set()
    for i, rule in enumerate(config.rules):
        key = f"rules[{i}]"
        name = config.rule_name(i)
        if name in names:
            out.append(f"{key}.name: {name!r} is used twice")
        names.add(name)
        if isinstance(rule, TripwireRule):
            if len(rule.line) != 2:
                out.append(f"{key}.line: expected two points")
            elif rule.line[0] == rule.line[1]:
                out.append(f"{key}.line: the two points are the same")
        wants = set(getattr(rule, "classes", ()))
        if isinstance(rule, ZoneRule | TripwireRule | LoiteringRule | CrowdRule | NoParkingRule):
            if not wants:
                out.append(f"{key}.classes: name at least one class")
            elif wants - {"person"} and config.vehicles is None:
                out.append(f"{key}.classes: vehicles need a [vehicles] table (the detector)")
        polygon = getattr(rule, "polygon", None)
        if polygon is not None and len(polygon) < 3:
            out.append(f"{key}.polygon: a polygon needs at least three points")
        for j, window in enumerate(getattr(rule, "schedule", [])):
            if not _SCHEDULE.match(window):
                out.append(f"{key}.schedule[{j}]: expected HH:MM-HH:MM, got {window!r}")
    return out
