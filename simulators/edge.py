"""The demo's cameras: camera configs on real poles, replaying vtest and a synthetic scene.

:func:`write_cameras` writes one TOML file per camera into ``run_dir/cameras/`` for the real
video agent (``polewatch edge video --camera FILE ...``). Cameras are mounted on poles of
different districts, so their alarms carry a pole's place and they appear on the command
centre's map and camera wall. The vtest cameras replay ``shared/data/video/vtest.avi``
(skipped with a note when the shared data is missing); the synthetic scenes need no data and
are rendered once into the run folder: the street with vehicles and the door at night of
:mod:`simulators.scenes`, and the plaza (people crossing a tripwire, a crowd forming and a
loiterer). Rules and cooldowns are chosen so alarms are a trickle (a few a minute), and
analysis runs at about 5 fps so the demo stays within two shared cores.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from polewatch.camera_schema import toml_table
from polewatch.poles.model import Pole
from simulators import scenes

SCENE_FPS = 10.0
SCENE_SIZE = (480, 360)
SCENE_SECONDS = 90
SCENE_FILE = "synthetic-scene-v1.avi"
"""Rendered once per run folder (the version changes when the scene does)."""
FIGURE_HEIGHT = 70.0
TRIPWIRE_X = 240.0
ANALYSIS_FPS = 5


@dataclass(frozen=True)
class Camera:
    """A camera of the demo: its config file and the pole it hangs on."""

    id: str
    config: Path
    pole: Pole
    source: str


def spread(poles: Sequence[Pole], count: int, seed: int) -> list[Pole]:
    """``count`` poles, one per district as long as districts last (deterministic)."""
    rng = random.Random(seed)
    shuffled = list(poles)
    rng.shuffle(shuffled)
    chosen: list[Pole] = []
    districts: set[str | None] = set()
    for pole in shuffled:
        if len(chosen) == count:
            break
        if pole.district not in districts:
            districts.add(pole.district)
            chosen.append(pole)
    for pole in shuffled:  # more wanted than districts: any pole not taken yet
        if len(chosen) == count:
            break
        if pole not in chosen:
            chosen.append(pole)
    return chosen


# --- the camera configs --------------------------------------------------------------------

_SYNTHETIC_RULES: list[dict[str, object]] = [
    {
        "type": "tripwire", "name": "gate-line", "direction": "any", "cooldown": 20,
        "line": [[TRIPWIRE_X, 150], [TRIPWIRE_X, 350]],
    },
    {"type": "crowd", "name": "gathering", "min_people": 4, "duration": 4, "cooldown": 60},
    {
        "type": "loitering", "name": "kiosk", "dwell": 12, "cooldown": 60,
        "polygon": [[30, 150], [200, 150], [200, 300], [30, 300]],
    },
]  # fmt: skip

_VTEST_CAMERAS: list[tuple[str, list[dict[str, object]]]] = [
    # zones and thresholds measured with `polewatch replay` over vtest.avi at 5 fps: the lawn
    # zone is entered about every 10 s, the car park twice per 80 s loop, six people are in
    # view together twice per loop; the cooldowns keep each camera near one alarm a minute
    (
        "lawn",
        [
            {
                "type": "zone", "name": "keep-off-lawn", "cooldown": 90,
                "polygon": [[0, 300], [768, 420], [768, 576], [0, 576]],
            },
            {"type": "crowd", "name": "gathering", "min_people": 6, "duration": 3,
             "cooldown": 180},
        ],
    ),
    (
        "car-park",
        [
            {
                "type": "zone", "name": "car-park", "cooldown": 60,
                "polygon": [[380, 130], [600, 130], [600, 200], [380, 200]],
            },
            {"type": "tamper", "duration": 3, "cooldown": 300},
        ],
    ),
]  # fmt: skip


def write_cameras(
    run_dir: Path,
    poles: Sequence[Pole],
    count: int,
    seed: int,
    data_dir: Path | None = None,
    timezone: str = "Asia/Shanghai",
) -> list[Camera]:
    """Write ``count`` camera configs into ``run_dir/cameras``: vtest (when ``data_dir`` has
    the video), the street with vehicles, the door at night, the people's plaza, vtest from
    its middle, then the synthetic ones again."""
    folder = run_dir / "cameras"
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob("*.toml"):
        old.unlink()
    vtest = data_dir / "video" / "vtest.avi" if data_dir is not None else None
    if vtest is not None and not vtest.is_file():
        vtest = None
    if vtest is None and count > 1:
        print("polewatch demo: no shared/data/video/vtest.avi: only synthetic cameras")
    Table = dict[str, object]
    plan: list[tuple[str, str, list[Table], Table, dict[str, Table]]] = []
    synthetic = ["traffic", "door", "plaza"]
    order = ["vtest", *synthetic, "vtest"] if vtest is not None else []
    vtests = list(_VTEST_CAMERAS)
    people: Table = {"fps": ANALYSIS_FPS, "person_min_height": 40, "person_max_height": 160}
    for n in range(count):
        kind = order[n] if n < len(order) else synthetic[(n - len(order)) % len(synthetic)]
        if kind == "vtest" and vtest is not None:
            name, rules = vtests.pop(0)
            replay = vtest
            if not vtests:  # the second replay starts halfway: not the same picture twice
                replay = rotated_copy(vtest, folder / "vtest-from-400.avi", 400)
            # people in this view are 70-120 px tall (see edge/video/vtest.toml)
            analysis: Table = {"fps": ANALYSIS_FPS, "person_min_height": 64,
                               "person_max_height": 240}  # fmt: skip
            plan.append((f"vtest-{name}", str(replay), rules, analysis, {}))
        elif kind == "plaza":
            scene = render_scene(folder / SCENE_FILE)
            plan.append((f"plaza-{n + 1}", str(scene), _SYNTHETIC_RULES, people, {}))
        else:
            made = scenes.STREET if kind == "traffic" else scenes.DOOR_NIGHT
            extra: dict[str, Table] = {"vehicles": made.vehicles} if made.vehicles else {}
            source = str(scenes.render(made, folder))
            plan.append((f"{kind}-{n + 1}", source, made.rules, made.analysis, extra))
    cameras = []
    for (camera_id, source, rules, analysis, tables), pole in zip(
        plan, spread(poles, len(plan), seed), strict=True
    ):
        kind = "hog" if camera_id.startswith("vtest") else "motion"
        text = toml_table(
            "",
            {
                "id": camera_id, "source": source, "pole": pole.code, "lon": pole.lon,
                "lat": pole.lat, "district": pole.district, "timezone": timezone,
            },
        )  # fmt: skip
        text += "\n" + toml_table("[analysis]", analysis)
        text += "\n" + toml_table("[detector]", {"kind": kind})
        for table, values in tables.items():
            text += "\n" + toml_table(f"[{table}]", values)
        for rule in rules:
            text += "\n" + toml_table("[[rules]]", rule)
        path = folder / f"{camera_id}.toml"
        path.write_text(f"# written by polewatch demo: camera on pole {pole.code}\n{text}")
        cameras.append(Camera(camera_id, path, pole, source))
    return cameras


def rotated_copy(src: Path, dst: Path, start: int) -> Path:
    """``src`` re-encoded to start at frame ``start`` (and go on with its beginning), so two
    cameras replaying one recording do not show the same moment; made once per run folder."""
    if dst.is_file() and dst.stat().st_size > 0:
        return dst
    import cv2

    cap = cv2.VideoCapture(str(src))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = cap.get(cv2.CAP_PROP_FPS) or SCENE_FPS
    size = (int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)))
    partial = dst.with_suffix(".part.avi")
    out = cv2.VideoWriter(str(partial), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    try:
        for first, last in ((start % max(total, 1), total), (0, start % max(total, 1))):
            cap.set(cv2.CAP_PROP_POS_FRAMES, first)
            for _ in range(first, last):
                ok, image = cap.read()
                if not ok:
                    break
                out.write(image)
    finally:
        out.release()
        cap.release()
    partial.replace(dst)
    return dst


# --- the synthetic scene -------------------------------------------------------------------

Foot = tuple[float, float] | None


def _walk(start: float, a: tuple[float, float], b: tuple[float, float], secs: float) -> list[Foot]:
    """Absent until ``start`` s, then walking from ``a`` to ``b`` in ``secs`` s."""
    lead: list[Foot] = [None] * int(start * SCENE_FPS)
    n = int(secs * SCENE_FPS)
    steps: list[Foot] = [
        (a[0] + (b[0] - a[0]) * i / (n - 1), a[1] + (b[1] - a[1]) * i / (n - 1)) for i in range(n)
    ]
    return lead + steps


def _gather(start: float, entry: tuple[float, float], spot: tuple[float, float]) -> list[Foot]:
    """Walks in to ``spot`` in 5 s, stays 15 s swaying (so the background model keeps seeing
    it), and walks back out."""
    path = _walk(start, entry, spot, 5.0)
    for i in range(int(15 * SCENE_FPS)):
        sway = 4.0 * math.sin(i / 3.0)
        path.append((spot[0] + sway, spot[1]))
    return path + _walk(0.0, spot, entry, 5.0)


def _loiter(start: float, secs: float) -> list[Foot]:
    """Pacing slowly to and fro inside the kiosk area."""
    lead: list[Foot] = [None] * int(start * SCENE_FPS)
    n = int(secs * SCENE_FPS)
    pacing: list[Foot] = [
        (115.0 + 60.0 * math.sin(i / 25.0), 230.0 + 20.0 * math.sin(i / 40.0)) for i in range(n)
    ]
    return lead + _walk(0.0, (-20.0, 240.0), (115.0, 230.0), 4.0)[:-1] + pacing


def scene_paths() -> list[list[Foot]]:
    """Who walks where in the scene's 90 s loop: three people crossing the tripwire, a crowd of
    five gathering for 15 s, and a loiterer."""
    return [
        _walk(6.0, (-20.0, 300.0), (500.0, 300.0), 9.0),
        _walk(58.0, (500.0, 265.0), (-20.0, 265.0), 9.0),
        _walk(75.0, (-20.0, 330.0), (500.0, 330.0), 8.0),
        _gather(18.0, (500.0, 200.0), (300.0, 190.0)),
        _gather(19.0, (500.0, 240.0), (350.0, 215.0)),
        _gather(20.0, (440.0, 370.0), (400.0, 190.0)),
        _gather(21.0, (500.0, 170.0), (440.0, 230.0)),
        _gather(22.0, (330.0, 370.0), (330.0, 260.0)),
        _loiter(42.0, 28.0),
    ]


def _frames() -> Iterator[object]:
    from edge.video import synthetic

    base = synthetic.background(*SCENE_SIZE, seed=11)
    paths = scene_paths()
    for i in range(int(SCENE_SECONDS * SCENE_FPS)):
        img = base.copy()
        for path in paths:
            foot = path[i] if i < len(path) else None
            if foot is not None:
                synthetic.figure(img, foot, FIGURE_HEIGHT)
        yield img


def render_scene(path: Path) -> Path:
    """Render the synthetic scene to ``path`` (an MJPEG AVI) unless it is already there."""
    if path.is_file() and path.stat().st_size > 0:
        return path
    from edge.video import synthetic

    partial = path.with_suffix(".part.avi")
    synthetic.write(partial, _frames(), fps=SCENE_FPS)  # type: ignore[arg-type]
    partial.replace(path)
    return path
