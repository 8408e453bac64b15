"""Reading a real pole inventory (CSV or GeoJSON) into poles, with a report of bad rows.

Codes are kept as printed (in Unicode NFC, surrounding whitespace stripped); Chinese, Korean
or any script's letters are fine (:mod:`polewatch.poles.codes`). A row is refused,
with its number and the reason, when its code is empty or repeats an earlier row's (both row
numbers are given; the first is kept), or its coordinates are missing, not numbers,
impossible, far from the rest of the file, or latitude and longitude swapped. Swaps and
strays are judged against the bulk of the file: its median position and the distance within
which most rows lie. Rows are numbered as a spreadsheet shows them (the CSV header is row 1);
GeoJSON features from 1.

A file that is neither a CSV nor a GeoJSON FeatureCollection, or lacks a mapped column,
raises :class:`InventoryError`.
"""

from __future__ import annotations

import csv
import io
import json
import math
import statistics
from pathlib import Path
from typing import Any, Literal

import msgspec

from polewatch.geo import haversine_m, plausible
from polewatch.poles.codes import printed, registrable
from polewatch.poles.grids import grid_of
from polewatch.poles.model import Pole

Format = Literal["csv", "geojson"]
FIELDS = ("id", "lon", "lat", "road", "district", "grid")
GUESSES: dict[str, tuple[str, ...]] = {
    "id": ("streetlightid", "poleid", "pole_id", "id", "code", "pole_code",
           "灯杆编号", "杆号", "编号", "관리번호"),
    "lon": ("xcoord", "lon", "lng", "long", "longitude", "x", "经度", "경도"),
    "lat": ("ycoord", "lat", "latitude", "y", "纬度", "위도"),
    "road": ("road", "street", "streetname", "street_name", "road_name", "道路", "路名",
             "도로명"),
    "district": ("district", "qh", "ward", "区", "行政区", "자치구"),
    "grid": ("grid", "grid_id", "网格"),
}  # fmt: skip
"""Column names tried (case-insensitive) for each field not mapped explicitly: English,
Chinese (Shenzhen's own inventories) and Korean (Seoul's)."""
STRAY_MIN_M = 50_000.0
"""Rows farther than this (and far beyond where most rows lie) from the median are strays."""


class InventoryError(ValueError):
    """The file cannot be read as a pole inventory; the message says why."""


class RowProblem(msgspec.Struct, frozen=True):
    """A refused row: its number, its code if any, and why."""

    row: int
    code: str | None
    reason: str


class ImportReport(msgspec.Struct, kw_only=True):
    """What reading an inventory produced."""

    source: str
    format: Format
    rows: int
    poles: list[Pole]
    problems: list[RowProblem]
    columns: dict[str, str | None]
    """Which column fed each field (``None``: not in the file, or the GeoJSON geometry)."""


class _Row(msgspec.Struct):
    row: int
    code: str
    lon: float
    lat: float
    values: dict[str, Any]


def read_inventory(
    path: str | Path,
    *,
    city: str,
    columns: dict[str, str] | None = None,
    fmt: Format | None = None,
) -> ImportReport:
    """Read ``path`` (format from ``fmt``, else the content) with ``columns`` mapping fields
    (:data:`FIELDS`) to column/property names; unmapped fields use :data:`GUESSES`."""
    data = Path(path).read_bytes()
    fmt = fmt or _sniff(data)
    text = _text(data)
    mapping = dict(columns or {})
    if fmt == "geojson":
        records, names = _geojson_records(text)
    else:
        records, names = _csv_records(text)
    resolved = _resolve_columns(names, mapping, geometry=fmt == "geojson")
    poles, problems = _validate(records, resolved, city)
    return ImportReport(
        source=str(path),
        format=fmt,
        rows=len(records),
        poles=poles,
        problems=problems,
        columns=resolved,
    )


def _sniff(data: bytes) -> Format:
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return "geojson" if head in (b"{", b"[") else "csv"


def _text(data: bytes) -> str:
    if not data.strip():
        raise InventoryError("the file is empty")
    if b"\x00" in data[:65536]:
        raise InventoryError("not a CSV or GeoJSON file: it holds binary data (NUL bytes)")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InventoryError(
            f"not a CSV or GeoJSON file: not UTF-8 text (byte {exc.start}: {exc.reason})"
        ) from None


Record = tuple[int, dict[str, Any], tuple[Any, Any] | str | None]
"""Row number, its values by column, and the GeoJSON Point (lon, lat) or why there is none."""


def _csv_records(text: str) -> tuple[list[Record], list[str]]:
    first_line = text.split("\n", 1)[0]
    delimiter = max(",;\t|", key=first_line.count)
    try:
        rows = list(csv.reader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise InventoryError(f"not a readable CSV file: {exc}") from None
    if not rows or not any(h.strip() for h in rows[0]):
        raise InventoryError("not a CSV file: no header row")
    header = [h.strip() for h in rows[0]]
    records: list[Record] = []
    for number, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue  # blank line
        records.append((number, dict(zip(header, row, strict=False)), None))
    return records, header


def _geojson_records(text: str) -> tuple[list[Record], list[str]]:
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InventoryError(f"not a GeoJSON file: invalid JSON ({exc})") from None
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        kind = doc.get("type") if isinstance(doc, dict) else type(doc).__name__
        raise InventoryError(f"not a GeoJSON FeatureCollection (top-level type: {kind!r})")
    features = doc.get("features")
    if not isinstance(features, list):
        raise InventoryError("not a GeoJSON FeatureCollection: 'features' is not a list")
    records: list[Record] = []
    names: dict[str, None] = {}
    for number, feature in enumerate(features, start=1):
        if not isinstance(feature, dict):
            records.append((number, {}, "the feature is not an object"))
            continue
        props = feature.get("properties")
        props = props if isinstance(props, dict) else {}
        names.update(dict.fromkeys(props))
        records.append((number, props, _point(feature.get("geometry"))))
    return records, list(names)


def _point(geometry: Any) -> tuple[Any, Any] | str:
    if not isinstance(geometry, dict):
        return "no geometry"
    if geometry.get("type") != "Point":
        return f"geometry is {geometry.get('type')!r}, not a Point"
    coords = geometry.get("coordinates")
    if not isinstance(coords, list) or len(coords) < 2:
        return "Point without coordinates"
    return coords[0], coords[1]


def _resolve_columns(
    names: list[str], mapping: dict[str, str], *, geometry: bool
) -> dict[str, str | None]:
    unknown = set(mapping) - set(FIELDS)
    if unknown:
        raise InventoryError(f"unknown field(s) {sorted(unknown)}; fields are {FIELDS}")
    by_fold = {n.casefold(): n for n in names}
    resolved: dict[str, str | None] = {}
    for field in FIELDS:
        if field in mapping:
            if mapping[field] not in names:
                raise InventoryError(
                    f"column {mapping[field]!r} (for {field}) is not in the file; "
                    f"columns: {', '.join(names) or 'none'}"
                )
            resolved[field] = mapping[field]
        elif geometry and field in ("lon", "lat"):
            resolved[field] = None  # the Point geometry, unless mapped explicitly
        else:
            resolved[field] = next((by_fold[g] for g in GUESSES[field] if g in by_fold), None)
    needed = ["id"] if geometry else ["id", "lon", "lat"]
    missing = [f for f in needed if resolved[f] is None]
    if geometry and (resolved["lon"] is None) != (resolved["lat"] is None):
        missing.append("lat" if resolved["lat"] is None else "lon")
    if missing:
        options = " ".join(f"--{f} COLUMN" for f in missing)
        raise InventoryError(
            f"no column for {', '.join(missing)} (map it with {options}); "
            f"columns: {', '.join(names) or 'none'}"
        )
    return resolved


def _number(value: Any, what: str) -> float | str:
    """A coordinate as a float, or the reason it is not one."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return f"missing {what}"
    if isinstance(value, bool):
        return f"{what} {value!r} is not a number"
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        return f"{what} {str(value)[:40]!r} is not a number"
    if not math.isfinite(number):
        return f"{what} {str(value)[:40]!r} is not a finite number"
    return number


def _code(value: Any) -> str:
    """A cell as text: codes (and road/district names) are strings or plain numbers."""
    if value is None or isinstance(value, bool | list | dict):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _validate(
    records: list[Record], columns: dict[str, str | None], city: str
) -> tuple[list[Pole], list[RowProblem]]:
    problems: list[RowProblem] = []
    first_row: dict[str, int] = {}
    parsed: list[_Row] = []
    for number, values, point in records:
        if not values and isinstance(point, str):
            problems.append(RowProblem(number, None, point))  # nothing to read a code from
            continue
        code = printed(_code(values.get(columns["id"] or "")))
        if not code:
            problems.append(RowProblem(number, None, "empty code"))
            continue
        unusable = registrable(code)
        if unusable:
            problems.append(RowProblem(number, code, unusable))
            continue
        if code in first_row:
            problems.append(
                RowProblem(
                    number,
                    code,
                    f"duplicate code {code!r} (first at row {first_row[code]}, which is kept)",
                )
            )
            continue
        first_row[code] = number
        if columns["lon"] is not None and columns["lat"] is not None:
            raw_lon, raw_lat = values.get(columns["lon"]), values.get(columns["lat"])
        elif isinstance(point, str):
            problems.append(RowProblem(number, code, point))
            continue
        else:
            raw_lon, raw_lat = point if point is not None else (None, None)
        lon, lat = _number(raw_lon, "longitude"), _number(raw_lat, "latitude")
        reason = lon if isinstance(lon, str) else lat if isinstance(lat, str) else None
        if reason is not None:
            problems.append(RowProblem(number, code, reason))
            continue
        assert isinstance(lon, float) and isinstance(lat, float)
        parsed.append(_Row(number, code, lon, lat, values))
    poles = _place(parsed, columns, city, problems)
    problems.sort(key=lambda p: p.row)
    return poles, problems


def _place(
    rows: list[_Row], columns: dict[str, str | None], city: str, problems: list[RowProblem]
) -> list[Pole]:
    """Judge each row's position against the bulk of the file and build the poles."""
    good = [r for r in rows if plausible(r.lon, r.lat)]
    centre: tuple[float, float] | None = None
    radius = STRAY_MIN_M
    if good:
        centre = statistics.median(r.lon for r in good), statistics.median(r.lat for r in good)
        spread = sorted(haversine_m(r.lon, r.lat, *centre) for r in good)
        radius = max(STRAY_MIN_M, 10 * spread[int(0.9 * (len(spread) - 1))])

    def near(lon: float, lat: float) -> bool:
        return (
            centre is not None and plausible(lon, lat) and haversine_m(lon, lat, *centre) <= radius
        )

    poles: list[Pole] = []
    for r in rows:
        where = f"({r.lon:g}, {r.lat:g})"
        if not near(r.lon, r.lat):
            if near(r.lat, r.lon):
                reason = f"latitude and longitude look swapped {where}"
            elif not plausible(r.lon, r.lat):
                reason = f"impossible coordinates {where}"
            else:
                assert centre is not None
                km = haversine_m(r.lon, r.lat, *centre) / 1000
                reason = f"coordinates {where} are {km:.0f} km from the rest of the file"
            problems.append(RowProblem(r.row, r.code, reason))
            continue
        extra = {
            f: _code(r.values.get(c)) or None
            for f in ("road", "district", "grid")
            if (c := columns[f]) is not None
        }
        poles.append(
            Pole(
                code=r.code,
                lon=r.lon,
                lat=r.lat,
                city=city,
                road=extra.get("road"),
                district=extra.get("district"),
                grid=extra.get("grid") or grid_of(r.lon, r.lat),
            )
        )
    return poles
