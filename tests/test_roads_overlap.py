"""Road files that cover the same ground: a later file's copy of an earlier file's street is
cut out, the rest of its way kept and joined to the earlier street, and the report says how
much went; on Shenzhen's two extracts each street of their overlap is left once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import shapely

from polewatch.poles.streets import read_streets, road_files, to_metres
from polewatch.roads import Way, build_network, read_roads


def collection(path: Path, *features: tuple[list[list[float]], dict[str, Any]]) -> Path:
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"highway": "primary", **props},
                        "geometry": {"type": "LineString", "coordinates": coords},
                    }
                    for coords, props in features
                ],
            }  # fmt: skip
        )
    )
    return path


def test_a_later_files_copy_is_cut_and_the_rest_joined(tmp_path: Path) -> None:
    osm = collection(
        tmp_path / "osm.geojson",
        ([[114.000, 22.5], [114.020, 22.5]], {"name": "深南大道", "osm_id": 1}),
    )
    other = collection(
        tmp_path / "other.geojson",
        # 8 m north of 深南大道 for 1.2 km, then north on its own
        ([[114.002, 22.50007], [114.014, 22.50007], [114.014, 22.51]], {"name": "科苑路"}),
        ([[114.010, 22.495], [114.010, 22.505]], {"name": "横街"}),  # crosses: kept whole
    )
    report = read_roads([other, osm])  # the file with OSM ids is kept whole, whatever the order
    overlap = report.overlap
    assert overlap is not None and overlap.files == [str(osm), str(other)]
    assert (overlap.ways_cut, overlap.ways_dropped, overlap.joins) == (1, 0, 1)
    assert 1150 < overlap.dropped_m < 1300  # the 1.2 km along 深南大道
    by_name = {w.name: w for w in report.ways}
    assert by_name["横街"].coords == [(114.010, 22.495), (114.010, 22.505)]
    kept = by_name["科苑路"].coords
    assert kept[0][1] == 22.5 and 114.0135 < kept[0][0] < 114.014  # joined onto 深南大道
    assert kept[1:] == [(114.014, 22.50007), (114.014, 22.51)]  # from its corner on
    net = build_network(report.ways)
    route = net.route(114.014, 22.509, 114.0, 22.5)
    assert route is not None and route.roads == ["科苑路", "深南大道"]
    assert route.distance_m < 1.05 * (1010 + 1440)


def test_shenzhens_overlap_strip_is_left_with_each_street_once(data_dir: Path) -> None:
    report = read_roads(road_files(data_dir))
    assert report.overlap is not None and report.overlap.files[0].endswith("central_roads.geojson")
    assert report.overlap.ways_dropped > 100 and report.overlap.dropped_m > 30_000
    central = [w for w in report.ways if w.source == report.overlap.files[0]]
    later = [w for w in report.ways if w.source != report.overlap.files[0]]
    near = shapely.union_all([line(w).buffer(12.0) for w in central])
    alongside = shapely.MultiLineString([line(w) for w in later]).intersection(near).length
    # before the cut 44 km of the Bao'an file ran within 12 m of a central street; what is
    # left is where streets cross or join one
    assert alongside < 5_000
    # the poles of the real-road city stand along the same streets
    streets, refused = read_streets(road_files(data_dir))
    assert refused == 0 and len(streets) == len(report.ways)


def line(way: Way) -> shapely.LineString:
    xy = np.asarray(way.coords)
    return shapely.LineString(np.column_stack(to_metres(xy[:, 0], xy[:, 1])))
