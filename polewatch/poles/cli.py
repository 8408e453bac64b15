"""``polewatch poles import|generate|lookup|markers``: the pole registry from the command line.

The Redis URL comes from :mod:`polewatch.settings` (``REDIS_URL``, ``POLEWATCH_REDIS_URL`` or
the config file); ``--redis-url`` overrides it. On a Redis Cluster (the ``redis_cluster``
setting, ``POLEWATCH_REDIS_CLUSTER=true`` with ``POLEWATCH_ZONES``) the client follows the
slots: a city's registry keys share its hash tag, so every action works there as on one
server. Exit status: 0 done, 1 not found (lookup, markers) or refused rows with ``--strict``
(import), 2 bad input (unreadable file, invalid code or plate size).
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from polewatch import districts
from polewatch.poles.codes import CodeError, side_of_road
from polewatch.poles.inventory import FIELDS, InventoryError, read_inventory
from polewatch.poles.model import Pole, Resolution
from polewatch.poles.registry import PoleRegistry
from polewatch.settings import Settings, SettingsError, load
from polewatch.terminal import Report, common_options, lonlat, with_redis

T = TypeVar("T")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    poles = sub.add_parser("poles", help="the pole registry: import, generate, look up")
    actions = poles.add_subparsers(dest="poles_command", required=True, metavar="ACTION")

    imp = actions.add_parser("import", help="import a CSV or GeoJSON pole inventory")
    imp.add_argument("file", help="the inventory (CSV with a header row, or GeoJSON)")
    imp.add_argument("--city", required=True, help="registry to import into")
    for field in FIELDS:
        imp.add_argument(
            f"--{field}",
            dest=f"col_{field}",
            metavar="COL",
            help=f"column/property holding the pole's {field}",
        )
    imp.add_argument("--format", choices=["csv", "geojson"], help="default: from the content")
    imp.add_argument("--dry-run", action="store_true", help="check the file, write nothing")
    imp.add_argument("--replace", action="store_true", help="the city holds only these after")
    imp.add_argument("--strict", action="store_true", help="exit 1 if any row was refused")
    common_options(imp)
    imp.set_defaults(func=_import)

    gen = actions.add_parser("generate", help="generate the Shenzhen demo city into Redis")
    gen.add_argument("--city", default="shenzhen", help="registry name (default: shenzhen)")
    gen.add_argument("--count", type=int, default=100_000, help="at least this many poles")
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--boundaries", help="district GeoJSON (default: shared/data/boundaries)")
    gen.add_argument("--roads", nargs="*", metavar="FILE",
                     help="road GeoJSON files to stand poles along (default: shared/data/roads; "
                          "none given: generated roads only)")  # fmt: skip
    common_options(gen)
    gen.set_defaults(func=_generate)

    look = actions.add_parser("lookup", help="where is pole CODE? (or what was meant)")
    look.add_argument("code")
    look.add_argument("--near", metavar="LON,LAT", type=lonlat, help="caller's rough position")
    look.add_argument("--city", help="registry (default: the city setting)")
    look.add_argument("--limit", type=int, default=10, help="candidates shown")
    common_options(look)
    look.set_defaults(func=_lookup)

    mark = actions.add_parser("markers", help="printable pole plates: PDF, or one SVG per pole")
    mark.add_argument("codes", nargs="*", metavar="CODE", help="poles to print (exact codes)")
    mark.add_argument("--road", help="every pole on this road")
    mark.add_argument("--district", help="every pole in this district (福田区, Futian, futian)")
    mark.add_argument("--limit", type=int, help="at most this many poles (by code)")
    mark.add_argument("--base-url", required=True, help="the gateway, e.g. https://pw.example")
    mark.add_argument("--out", required=True, help="FILE.pdf (one page each), FILE.svg or DIR")
    mark.add_argument("--size", default="150x200", help="plate WIDTHxHEIGHT in mm (150x200)")
    mark.add_argument("--city", help="registry (default: the city setting)")
    common_options(mark)
    mark.set_defaults(func=_markers)


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    return load(Settings, section="poles", overrides=overrides)


def _report(args: argparse.Namespace) -> Report:
    """The command's output, its progress in the language setting."""
    out = Report("poles", as_json=args.json)
    with contextlib.suppress(SettingsError):  # reported where the settings are used
        out.language = _settings(args).language
    return out


def _fail(message: str, status: int = 2) -> int:
    return Report("poles").fail(message, status)


def _with_redis(args: argparse.Namespace, work: Callable[[aioredis.Redis], Awaitable[T]]) -> T:
    return with_redis(_settings(args), work)


def _import(args: argparse.Namespace) -> int:
    columns = {f: getattr(args, f"col_{f}") for f in FIELDS if getattr(args, f"col_{f}")}
    out = _report(args)
    out.progress("cli.reading", source=args.file)
    try:
        report = read_inventory(args.file, city=args.city, columns=columns, fmt=args.format)
    except (InventoryError, OSError) as exc:
        return out.fail(f"{args.file}: {exc}")
    version = None
    if not args.dry_run:
        out.progress("cli.storing", count=len(report.poles))

        async def store(client: aioredis.Redis) -> int:
            return await PoleRegistry(client, args.city).store(report.poles, replace=args.replace)

        try:
            version = _with_redis(args, store)
        except (RedisError, SettingsError) as exc:
            return out.fail(f"cannot write the registry: {exc}", 1)
    summary = {
        "source": report.source,
        "format": report.format,
        "city": args.city,
        "rows": report.rows,
        "imported": 0 if args.dry_run else len(report.poles),
        "valid": len(report.poles),
        "refused": len(report.problems),
        "dry_run": args.dry_run,
        "version": version,
        "columns": report.columns,
        "problems": report.problems,
    }
    if args.json:
        out.json(summary)
    else:
        used = ", ".join(f"{f}={c}" for f, c in report.columns.items() if c)
        out.line(
            f"{report.source} ({report.format}; {used or 'geometry'}): {report.rows} rows, "
            f"{len(report.poles)} valid, {len(report.problems)} refused"
        )
        out.refused(report.problems, lambda p: f"row {p.row}" + (f" [{p.code}]" if p.code else ""))
        if args.dry_run:
            out.line("dry run: nothing written")
        else:
            out.line(f"imported {len(report.poles)} poles into {args.city!r} (version {version})")
    return 1 if args.strict and report.problems else 0


def _generate(args: argparse.Namespace) -> int:
    from polewatch.poles.city import find_data_dir, generate_city
    from polewatch.poles.streets import road_files

    out = _report(args)
    started = time.perf_counter()
    roads = args.roads
    if roads is None:
        with contextlib.suppress(FileNotFoundError):  # no shared data: generated roads only
            roads = road_files(find_data_dir())
    out.progress("cli.generating", city=args.city)
    try:
        poles = generate_city(
            seed=args.seed,
            count=args.count,
            city=args.city,
            boundaries=args.boundaries,
            roads=roads or (),
        )
    except (OSError, ValueError) as exc:  # a road file that cannot be read: RoadsError
        return out.fail(str(exc))
    generated = time.perf_counter()
    out.progress("cli.storing", count=len(poles))

    async def store(client: aioredis.Redis) -> int:
        return await PoleRegistry(client, args.city).store(poles, replace=True)

    try:
        version = _with_redis(args, store)
    except (RedisError, SettingsError) as exc:
        return out.fail(f"cannot write the registry: {exc}", 1)
    stored = time.perf_counter()
    summary = {
        "city": args.city,
        "poles": len(poles),
        "seed": args.seed,
        "roads": len({p.road for p in poles}),
        "districts": len({p.district for p in poles}),
        "grids": len({p.grid for p in poles}),
        "real_road_poles": sum(p.source == "osm" for p in poles),
        "generated_road_poles": sum(p.source == "generated" for p in poles),
        "version": version,
        "generate_s": round(generated - started, 3),
        "store_s": round(stored - generated, 3),
    }
    if args.json:
        out.json(summary)
    else:
        out.line(
            f"generated {len(poles)} poles of {args.city!r} on {summary['roads']} roads in "
            f"{summary['districts']} districts, {summary['grids']} grids "
            f"({summary['real_road_poles']} along real roads, "
            f"{summary['generated_road_poles']} on generated ones; {summary['generate_s']} s), "
            f"stored in {summary['store_s']} s "
            f"(version {version})"
        )
    return 0


def _lookup(args: argparse.Namespace) -> int:
    try:
        settings = _settings(args)
        city = args.city or settings.city

        async def resolve(client: aioredis.Redis) -> Resolution:
            registry = PoleRegistry(client, city)
            pole = await registry.get(args.code)
            if pole is None:
                return (await registry.load_index()).resolve(args.code, args.near, args.limit)
            return _exact(args.code, pole, args.near)

        resolution = _with_redis(args, resolve)
    except CodeError as exc:
        return _fail(f"{args.code!r}: {exc}")
    except (RedisError, SettingsError) as exc:
        return _fail(f"cannot read the registry: {exc}", 1)
    if args.json:
        Report("poles").json(resolution)
    elif resolution.pole is not None:
        print(describe(resolution.pole))
    elif resolution.candidates:
        print(f"no pole {args.code!r} in {city!r}; did you mean:")
        for rank, c in enumerate(resolution.candidates, start=1):
            away = f", {c.distance_m / 1000:.1f} km away" if c.distance_m is not None else ""
            print(f"  {rank:2d}. {c.pole.code:<10} {c.mistake:<13} score {c.score:.2f}{away}")
            print(f"      {describe(c.pole, short=True)}")
    else:
        print(f"no pole {args.code!r} in {city!r}, and none one mistake away")
    return 0 if resolution.pole is not None else 1


def _markers(args: argparse.Namespace) -> int:
    from pathlib import Path

    from polewatch.poles import markers

    if not (args.codes or args.road or args.district or args.limit):
        return _fail("name the poles: CODES, --road, --district, or --limit N for any")
    if args.limit is not None and args.limit < 1:
        return _fail("--limit must be at least 1")
    try:
        size = markers.parse_size(args.size)
        markers.pole_url(args.base_url, "0")
        city = args.city or _settings(args).city

        async def select(client: aioredis.Redis) -> tuple[list[Pole], list[str]]:
            registry = PoleRegistry(client, city)
            if args.codes:
                found = [await registry.get(code) for code in args.codes]
                missing = [c for c, p in zip(args.codes, found, strict=True) if p is None]
                poles = [p for p in found if p is not None]
            else:
                poles, missing = sorted((await registry.load())[1], key=lambda p: p.code), []
            poles = [
                p
                for p in poles
                if (args.road is None or p.road == args.road)
                and (args.district is None or districts.same(p.district, args.district))
            ]
            return poles[: args.limit], missing

        poles, missing = _with_redis(args, select)
    except markers.MarkerError as exc:
        return _fail(str(exc))
    except (RedisError, SettingsError) as exc:
        return _fail(f"cannot read the registry: {exc}", 1)
    if missing:
        return _fail(f"no such pole in {city!r}: {', '.join(map(repr, missing))}", 1)
    if not poles:
        return _fail(f"no pole in {city!r} matches", 1)
    language = _settings(args).language
    plates = [markers.layout(p, args.base_url, size=size, language=language) for p in poles]
    out = Path(args.out)
    try:
        if out.suffix.lower() == ".pdf":
            markers.write_pdf(plates, out, title=f"Pole markers, {city}")
            written = [out]
        elif out.suffix.lower() == ".svg":
            if len(plates) != 1:
                return _fail(f"{len(plates)} poles need a .pdf or a directory, not one .svg")
            out.write_text(markers.svg(plates[0]), encoding="utf-8")
            written = [out]
        else:
            out.mkdir(parents=True, exist_ok=True)
            written = [out / markers.svg_name(p.code) for p in plates]
            for path, plate in zip(written, plates, strict=True):
                path.write_text(markers.svg(plate), encoding="utf-8")
    except OSError as exc:
        return _fail(f"cannot write {args.out}: {exc}")
    summary = {"city": city, "poles": len(plates), "size_mm": list(size), "files": written}
    if args.json:
        Report("poles").json({**summary, "files": [str(p) for p in written]})
    else:
        where = written[0] if len(written) == 1 else f"{len(written)} SVG files in {out}"
        print(f"{len(plates)} pole markers ({size[0]:g} x {size[1]:g} mm) -> {where}")
    return 0


def _exact(code: str, pole: Pole, near: tuple[float, float] | None) -> Resolution:
    from polewatch.poles.index import PoleIndex

    return PoleIndex([pole]).resolve(code, near)


def describe(pole: Pole, *, short: bool = False) -> str:
    """A pole for people: road and side, district, grid, position."""
    where = pole.road or "road unknown"
    orientation = pole.attrs.get("orientation")
    if pole.side and orientation in ("E-W", "N-S"):
        where += f", {side_of_road(orientation, pole.side)} side"  # type: ignore[arg-type]
    place = ", ".join(x for x in (where, pole.district and f"district {pole.district}") if x)
    position = f"lon {pole.lon:.6f}, lat {pole.lat:.6f}; grid {pole.grid or '-'}"
    if short:
        return f"{place}; {position}"
    return f"pole {pole.code} ({pole.city})\n  {place}\n  {position}"
