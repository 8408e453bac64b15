"""A caller's position as a call-taker gets it: typed coordinates, a pasted map link, or a
phone's location fix, parsed offline into WGS-84 longitude and latitude.

Understood (anything else is a :class:`PositionError` saying what was expected):

* coordinates: ``22.5431, 114.0579`` (latitude first, as map apps copy them; the order is
  swapped when the first number cannot be a latitude), ``22.5431 114.0579``,
  ``22.5431°N 114.0579°E``, ``N22.5431 E114.0579``, degrees-minutes-seconds
  ``22°32'35.2"N 114°03'28.4"E``;
* ``geo:`` URIs (RFC 5870): ``geo:22.5431,114.0579;u=35``;
* map links: Google (``?q=lat,lon``, ``ll=``, ``/@lat,lon,17z``), Apple (``ll=``, ``q=``),
  OpenStreetMap (``mlat=``/``mlon=``, ``#map=17/lat/lon``), Bing (``cp=lat~lon``), Amap/Gaode
  (``position=lon,lat``, ``q=lat,lon``; GCJ-02), Tencent (``marker=coord:lat,lon``; GCJ-02),
  Baidu (``location=lat,lon``, BD-09 unless ``coord_type`` says otherwise);
* a handset's location fix as sent by Advanced Mobile Location (``lt=+22.54317;lg=+114.05757;
  rd=50``) or the same keys typed by hand.

Chinese map services publish GCJ-02 or BD-09 coordinates, a few hundred metres off WGS-84;
they are converted (the published approximate inverse, good to a few metres), so distances to
the poles stay honest.
"""

from __future__ import annotations

import math
import re
from typing import Final, Literal
from urllib.parse import parse_qs, unquote, urlsplit

import msgspec

from polewatch import geo

MAX_TEXT: Final = 2000
Datum = Literal["wgs84", "gcj02", "bd09"]


class PositionError(ValueError):
    """The text is not a position this module understands; the message says what is."""


class Fix(msgspec.Struct, frozen=True, kw_only=True):
    """A caller's position: WGS-84, where it came from, how sure (metres) when known."""

    lon: float
    lat: float
    source: str
    """``coordinates``, ``geo``, ``aml``, or the map service of a link (``google``, ...)."""
    datum: Datum = "wgs84"
    """The datum the text was in (the position itself is always WGS-84)."""
    accuracy_m: float | None = None


NUMBER: Final = r"[-+]?\d{1,3}(?:\.\d+)?"
PAIR: Final = re.compile(rf"^\s*({NUMBER})\s*(?:,|\s)\s*({NUMBER})\s*$")
DMS: Final = r"""(\d{1,3}(?:\.\d+)?)\s*(?:°|º|deg)?\s*
    (?:(\d{1,2}(?:\.\d+)?)\s*['′]\s*)?(?:(\d{1,2}(?:\.\d+)?)\s*["″]\s*)?"""
PREFIXED: Final = re.compile(r"([NSEW])\s*" + DMS, re.IGNORECASE | re.VERBOSE)
SUFFIXED: Final = re.compile(DMS + r"([NSEW])(?![A-Za-z])", re.IGNORECASE | re.VERBOSE)
AML: Final = re.compile(r"\b(lt|lg|rd)=([-+]?\d+(?:\.\d+)?)", re.IGNORECASE)
AT_PATH: Final = re.compile(rf"@({NUMBER}),({NUMBER})")
OSM_FRAGMENT: Final = re.compile(rf"map=\d+(?:\.\d+)?/({NUMBER})/({NUMBER})")
GCJ_SERVICES: Final = {"amap": "amap", "gaode": "amap", "autonavi": "amap", "qq": "tencent"}
LAT_LON_KEYS: Final = ("mlat", "q", "query", "ll", "sll", "center", "daddr", "destination",
                       "location", "coord", "cp", "marker", "position")  # fmt: skip


def parse_position(text: str) -> Fix:
    """The WGS-84 position ``text`` gives; :class:`PositionError` when it gives none."""
    if not isinstance(text, str) or not text.strip():
        raise PositionError("no position given")
    if len(text) > MAX_TEXT:
        raise PositionError(f"a position is at most {MAX_TEXT} characters")
    text = text.strip()
    lowered = text.lower()
    if lowered.startswith("geo:"):
        return _geo_uri(text)
    if lowered.startswith(("http://", "https://")) or re.match(r"^[\w-]+(\.[\w-]+)+/", text):
        return _link(text if "://" in text else "https://" + text)
    if AML.search(text):
        return _aml(text)
    return _coordinates(text)


def _checked(lon: float, lat: float, source: str, datum: Datum = "wgs84",
             accuracy_m: float | None = None) -> Fix:  # fmt: skip
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise PositionError(f"{lat}, {lon} is not a latitude and longitude")
    if datum == "bd09":
        lon, lat = _bd09_to_gcj02(lon, lat)
    if datum != "wgs84":
        lon, lat = _gcj02_to_wgs84(lon, lat)
    if not geo.plausible(lon, lat):
        raise PositionError(f"{lat}, {lon} is not a possible position")
    return Fix(lon=round(lon, 7), lat=round(lat, 7), source=source, datum=datum,
               accuracy_m=accuracy_m)  # fmt: skip


def _lat_first(a: float, b: float, source: str, datum: Datum = "wgs84") -> Fix:
    """``a, b`` as latitude, longitude; swapped when ``a`` cannot be a latitude."""
    if abs(a) > 90.0 >= abs(b):
        a, b = b, a
    return _checked(b, a, source, datum)


def _coordinates(text: str) -> Fix:
    pair = PAIR.match(text)
    if pair:
        return _lat_first(float(pair.group(1)), float(pair.group(2)), "coordinates")
    for hemispheres in (_hemispheres(PREFIXED, text, 0), _hemispheres(SUFFIXED, text, 3)):
        if set(hemispheres) == {"lat", "lon"}:
            return _checked(hemispheres["lon"], hemispheres["lat"], "coordinates")
    raise PositionError(
        "not a position: give latitude, longitude (22.5431, 114.0579), a geo: URI, a map "
        "link or a phone's location fix (lt=..;lg=..)"
    )


def _hemispheres(pattern: re.Pattern[str], text: str, hemi_at: int) -> dict[str, float]:
    """``lat``/``lon`` of the degrees (minutes, seconds) marked N, S, E or W in ``text``;
    ``hemi_at``: which group of ``pattern`` holds the letter (the others: d, m, s)."""
    values: dict[str, float] = {}
    for m in pattern.finditer(text):
        groups = list(m.groups())
        hemi = groups.pop(hemi_at).upper()
        d, minutes, seconds = groups
        degrees = float(d) + float(minutes or 0) / 60 + float(seconds or 0) / 3600
        axis = "lat" if hemi in "NS" else "lon"
        if axis in values:
            raise PositionError(f"two {'latitudes' if axis == 'lat' else 'longitudes'} given")
        values[axis] = -degrees if hemi in "SW" else degrees
    return values


def _geo_uri(text: str) -> Fix:
    body = text[4:].split("?", 1)[0]
    coords, *params = body.split(";")
    parts = coords.split(",")
    if len(parts) not in (2, 3):
        raise PositionError("a geo: URI is geo:latitude,longitude")
    try:
        lat, lon = float(parts[0]), float(parts[1])
    except ValueError:
        raise PositionError("a geo: URI is geo:latitude,longitude") from None
    accuracy = None
    for param in params:
        key, _, value = param.partition("=")
        if key.strip().lower() == "u":
            accuracy = _number(value)
    return _checked(lon, lat, "geo", accuracy_m=accuracy)


def _aml(text: str) -> Fix:
    found = {k.lower(): float(v) for k, v in AML.findall(text)}
    if "lt" not in found or "lg" not in found:
        raise PositionError("a location fix needs both lt= (latitude) and lg= (longitude)")
    return _checked(found["lg"], found["lt"], "aml", accuracy_m=found.get("rd"))


def _number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) and number >= 0 else None


def _service(host: str) -> str:
    for name in ("google", "openstreetmap", "osm", "bing", "apple", "baidu", *GCJ_SERVICES):
        if name in host.split("."):
            return {"openstreetmap": "osm", **GCJ_SERVICES}.get(name, name)
    return host.rsplit(".", 2)[-2] if host.count(".") else host


def _link(url: str) -> Fix:
    parts = urlsplit(url)
    service = _service((parts.hostname or "").lower())
    query = {k.lower(): v[0] for k, v in parse_qs(parts.query).items() if v}
    datum: Datum = "gcj02" if service in ("amap", "tencent") else "wgs84"
    if service == "baidu":
        kind = query.get("coord_type", "bd09ll").lower()
        datum = "wgs84" if kind.startswith("wgs") else "gcj02" if kind.startswith("gcj") else "bd09"
    if "mlat" in query and "mlon" in query:
        return _checked(_float(query["mlon"]), _float(query["mlat"]), service, datum)
    if service == "amap" and "position" in query:  # Amap's marker links put longitude first
        lon, lat = _two(query["position"])
        return _checked(lon, lat, service, datum)
    for key in LAT_LON_KEYS:
        if key in query:
            try:
                a, b = _two(query[key].removeprefix("coord:"))
            except PositionError:
                continue
            return _lat_first(a, b, service, datum)
    for pattern, where in ((AT_PATH, unquote(parts.path)), (OSM_FRAGMENT, parts.fragment)):
        m = pattern.search(where)
        if m:
            return _lat_first(float(m.group(1)), float(m.group(2)), service, datum)
    raise PositionError(f"no position found in the {service} link")


def _float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise PositionError(f"{value[:40]!r} is not a number") from None


def _two(value: str) -> tuple[float, float]:
    numbers = re.findall(NUMBER, value.replace("~", ","))
    if len(numbers) < 2:
        raise PositionError(f"{value[:40]!r} holds no pair of coordinates")
    return float(numbers[0]), float(numbers[1])


# --- Chinese datums ----------------------------------------------------------------------
_A: Final = 6378245.0  # the Krasovsky ellipsoid GCJ-02 is built on
_EE: Final = 0.00669342162296594323


def _inside_china(lon: float, lat: float) -> bool:
    return 72.004 <= lon <= 137.8347 and 0.8293 <= lat <= 55.8271


def _gcj02_offset(lon: float, lat: float) -> tuple[float, float]:
    """The (published, approximate) GCJ-02 shift of a WGS-84 point, in degrees."""
    x, y = lon - 105.0, lat - 35.0
    root = math.sqrt(abs(x))
    waves = (20.0 * math.sin(6.0 * x * math.pi) + 20.0 * math.sin(2.0 * x * math.pi)) * 2 / 3
    d_lat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * root + waves
    d_lat += (20.0 * math.sin(y * math.pi) + 40.0 * math.sin(y / 3.0 * math.pi)) * 2 / 3
    d_lat += (160.0 * math.sin(y / 12.0 * math.pi) + 320.0 * math.sin(y * math.pi / 30.0)) * 2 / 3
    d_lon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * root + waves
    d_lon += (20.0 * math.sin(x * math.pi) + 40.0 * math.sin(x / 3.0 * math.pi)) * 2 / 3
    d_lon += (150.0 * math.sin(x / 12.0 * math.pi) + 300.0 * math.sin(x / 30.0 * math.pi)) * 2 / 3
    rad = lat / 180.0 * math.pi
    magic = 1 - _EE * math.sin(rad) ** 2
    d_lat = d_lat * 180.0 / ((_A * (1 - _EE)) / (magic * math.sqrt(magic)) * math.pi)
    d_lon = d_lon * 180.0 / (_A / math.sqrt(magic) * math.cos(rad) * math.pi)
    return d_lon, d_lat


def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    """A WGS-84 point as Chinese map services show it (unchanged outside China)."""
    if not _inside_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _gcj02_offset(lon, lat)
    return lon + d_lon, lat + d_lat


def _gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]:
    if not _inside_china(lon, lat):
        return lon, lat
    d_lon, d_lat = _gcj02_offset(lon, lat)
    return lon - d_lon, lat - d_lat


def _bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]:
    x, y = lon - 0.0065, lat - 0.006
    turn = math.pi * 3000.0 / 180.0
    z = math.sqrt(x * x + y * y) - 0.00002 * math.sin(y * turn)
    theta = math.atan2(y, x) - 0.000003 * math.cos(x * turn)
    return z * math.cos(theta), z * math.sin(theta)
