"""``polewatch roads import|info|route``: the road network from the command line.

Settings section ``[roads]`` (:class:`~polewatch.roads.profile.RoadSettings`): speeds by road
class, off-road speed, snapping distance; the shared ``zones`` setting, when set, refuses
roads wholly outside the zones. Exit status: 0 done, 1 refused features with ``--strict``,
no graph stored (info, route) or no route, 2 bad input (unreadable file, bad option).
"""

from __future__ import annotations

import argparse
import time

from redis.exceptions import RedisError

from polewatch import i18n
from polewatch.roads.features import FeatureProblem, read_roads, to_geojson
from polewatch.roads.graph import build
from polewatch.roads.network import RoadNetwork
from polewatch.roads.profile import RoadSettings
from polewatch.roads.store import RoadStore
from polewatch.roads.ways import RoadsError
from polewatch.settings import SettingsError, load
from polewatch.terminal import Report, common_options, lonlat, with_redis


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    roads = sub.add_parser("roads", help="the road network: import, inspect, route")
    actions = roads.add_subparsers(dest="roads_command", required=True, metavar="ACTION")

    imp = actions.add_parser("import", help="import road files as the city's graph")
    imp.add_argument(
        "files", nargs="+", metavar="FILE", help="GeoJSON LineStrings, or .osm.pbf/.osm files"
    )
    imp.add_argument("--dry-run", action="store_true", help="check and build, write nothing")
    imp.add_argument("--strict", action="store_true", help="exit 1 if any feature was refused")
    _common(imp)
    imp.set_defaults(func=_import)

    info = actions.add_parser("info", help="the stored graph: version, size, speeds")
    _common(info)
    info.set_defaults(func=_info)

    route = actions.add_parser("route", help="the fastest drive between two points")
    route.add_argument("origin", type=lonlat, metavar="LON,LAT")
    route.add_argument("destination", type=lonlat, metavar="LON,LAT")
    route.add_argument("--lang", choices=i18n.LANGUAGES, help="default: the language setting")
    _common(route)
    route.set_defaults(func=_route)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--city", help="the city (default: the city setting)")
    common_options(parser)


def _settings(args: argparse.Namespace) -> RoadSettings:
    overrides = {"redis_url": args.redis_url} if args.redis_url else {}
    return load(RoadSettings, section="roads", overrides=overrides)


def _fail(message: str, status: int = 2) -> int:
    return Report("roads").fail(message, status)


def _import(args: argparse.Namespace) -> int:
    out = Report("roads", as_json=args.json)
    try:
        settings = _settings(args)
        out.language = settings.language
        city = args.city or settings.city
        started = time.perf_counter()
        out.progress("cli.reading", source=", ".join(args.files))
        report = read_roads(args.files, zones=settings.zone_map())
        profile = settings.profile()
        out.progress("cli.building", ways=len(report.ways))
        arrays, stats = build(report.ways, profile)
        network = RoadNetwork(arrays, profile=profile, names=[w.name for w in report.ways],
                              highways=[w.highway for w in report.ways], city=city)  # fmt: skip
        built_s = time.perf_counter() - started
    except (RoadsError, SettingsError, ValueError) as exc:
        return out.fail(str(exc))
    version = None
    if not args.dry_run and report.ways:
        out.progress("cli.storing_roads", ways=len(report.ways))
        try:
            version = with_redis(
                settings, lambda r: RoadStore(r, city).store(network, to_geojson(report.ways))
            )
        except RedisError as exc:
            return out.fail(f"cannot write the road graph: {exc}", 1)
    summary = {
        "sources": report.sources,
        "city": city,
        "features": report.features,
        "ways": len(report.ways),
        "refused": len(report.problems),
        "duplicates": len(report.duplicates),
        "unnamed": report.unnamed,
        **stats,
        "fastest_kmh": round(network.fastest_mps * 3.6, 1),
        "build_s": round(built_s, 3),
        "dry_run": args.dry_run,
        "version": version,
        "problems": report.problems,
        "duplicate_features": report.duplicates,
        "notes": report.notes,
        "overlap": report.overlap,
    }
    if args.json:
        out.json(summary)
    else:
        out.line(
            f"{', '.join(report.sources)}: {report.features} features, {len(report.ways)} ways "
            f"kept ({report.unnamed} unnamed), {len(report.problems)} refused, "
            f"{len(report.duplicates)} duplicates"
        )
        out.refused(report.problems, _feature)
        out.refused(report.notes, _feature, label="note: ")
        if (cut := report.overlap) is not None:
            out.line(
                f"overlapping files: {cut.dropped_m / 1000:.1f} km of {', '.join(cut.files[1:])} "
                f"dropped as duplicate of {cut.files[0]} ({cut.ways_dropped} ways whole, "
                f"{cut.ways_cut} in part, {cut.joins} cut ends joined)"
            )
        out.line(
            f"graph: {stats['nodes']} nodes, {stats['edges']} edges, {stats['vertex_snaps']} + "
            f"{stats['segment_snaps']} ends snapped, built in {built_s:.2f} s"
        )
        if args.dry_run or not report.ways:
            out.line("nothing written")
        else:
            out.line(f"stored the road graph of {city!r} (version {version})")
    return 1 if args.strict and report.problems else 0


def _feature(item: FeatureProblem) -> str:
    osm = f" [osm {item.osm_id}]" if item.osm_id is not None else ""
    return f"{item.source} feature {item.feature}{osm}"


def _stored(args: argparse.Namespace) -> RoadNetwork | int:
    """The stored network, or the exit status after saying why there is none."""
    try:
        settings = _settings(args)
        city = args.city or settings.city
        network = with_redis(settings, lambda r: RoadStore(r, city).load())
    except (RedisError, SettingsError, ValueError) as exc:
        return _fail(str(exc), 1)
    if network is None:
        return _fail(f"no road graph for {city!r}: run 'polewatch roads import'", 1)
    return network


def _info(args: argparse.Namespace) -> int:
    network = _stored(args)
    if isinstance(network, int):
        return network
    city = network.city
    summary = {
        "city": city,
        "version": network.version,
        "nodes": network.nodes,
        "edges": network.edges,
        "ways": len(network.names),
        "fastest_kmh": round(network.fastest_mps * 3.6, 1),
        "profile": network.profile,
    }
    if args.json:
        Report("roads").json(summary)
    else:
        print(f"road graph of {city!r}, version {network.version}: {network.nodes} nodes, "
              f"{network.edges} edges from {len(network.names)} ways; fastest "
              f"{summary['fastest_kmh']} km/h")  # fmt: skip
    return 0


def _route(args: argparse.Namespace) -> int:
    network = _stored(args)
    if isinstance(network, int):
        return network
    route = network.route(*args.origin, *args.destination)
    if args.json:
        Report("roads").json(route)
    else:
        lang = args.lang or _settings(args).language
        if route is None:
            print(i18n.translate("roads.no_route", lang))
        else:
            distance = f"{route.distance_m / 1000:.1f} km"
            minutes = max(1, round(route.time_s / 60))
            print(i18n.translate("map.by_road", lang, distance=distance, minutes=minutes))
            if route.roads:
                print("  " + " → ".join(route.roads))
    return 0 if route is not None else 1
