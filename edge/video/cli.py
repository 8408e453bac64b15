"""``polewatch replay`` (a camera config over a video file) and ``polewatch edge video``."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from edge.cli import edge_subparsers
from edge.video import config as cfg


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = sub.add_parser(
        "replay", help="run a camera's video pipeline over a file; JSON lines of boxes and events"
    )
    replay.add_argument("video", help="video file")
    replay.add_argument("--camera", required=True, help="camera config (TOML)")
    replay.add_argument("--out", default="-", help="JSON lines output (default '-': stdout)")
    replay.add_argument(
        "--annotate", metavar="OUT.mp4", help="also write the analysis drawn on the video (H.264)"
    )
    replay.add_argument(
        "--json", action="store_true", help="machine use: no progress line on the terminal"
    )
    replay.add_argument("--eval", metavar="GT.txt", help="MOT ground truth: print quality JSON")
    replay.add_argument("--iou", type=float, default=0.5, help="IoU for a match (--eval)")
    replay.add_argument(
        "--crossings", metavar="FILE", help="hand-annotated tripwire crossings to compare with"
    )
    replay.add_argument("--frames", type=int, help="stop after this many video frames")
    replay.set_defaults(func=_replay)

    video = edge_subparsers(sub).add_parser(
        "video", help="run camera agents: alarms, heartbeats and frames to Redis"
    )
    video.add_argument("--camera", action="append", required=True, help="camera config (TOML)")
    video.add_argument("--config", help="polewatch settings file (redis_url, city, ...)")
    video.add_argument("--redis-url", help="Redis URL (overrides settings)")
    video.set_defaults(func=_agent)


def _replay(args: argparse.Namespace) -> int:
    from edge.video import evaluate, replay

    try:
        config = cfg.load(args.camera)
    except cfg.ConfigError as exc:
        print(f"polewatch replay: {exc}", file=sys.stderr)
        return 2
    try:
        truth = evaluate.read_mot(args.eval) if args.eval else None
        crossings = evaluate.read_crossings(args.crossings) if args.crossings else None
    except (OSError, evaluate.GroundTruthError) as exc:
        print(f"polewatch replay: {exc}", file=sys.stderr)
        return 2
    import cv2

    # One thread: OpenCV's parallel HOG can differ in the last bits from run to run, and a
    # replay that users tune with, and measure by, must give the same answer every time.
    cv2.setNumThreads(1)
    out = sys.stdout if args.out == "-" else open(args.out, "w")  # noqa: SIM115
    # The progress line goes to a terminal's stderr, unless the JSON lines go there too.
    quiet = args.json or (args.out == "-" and sys.stdout.isatty())
    try:
        result = _run(args, config, out, quiet)
    except (replay.VideoError, OSError) as exc:
        print(f"polewatch replay: {exc}", file=sys.stderr)
        return 2
    finally:
        if out is not sys.stdout:
            out.close()
    report: dict[str, Any] = {}
    if truth is not None:
        report = evaluate.detection_quality(result.boxes, truth, args.iou)
        first, last = min(truth), max(truth)
        wires = {}
        for i, rule in enumerate(config.rules):
            if isinstance(rule, cfg.TripwireRule):
                name = config.rule_name(i)
                wires[name] = {
                    "truth": dict(evaluate.tripwire_truth(rule, truth, result.fps)),
                    "found": dict(
                        evaluate.count_events(result.events, name, range(first, last + 1))
                    ),
                }
        report["tripwire"] = wires
    if crossings is not None:
        report["crossings"] = evaluate.crossing_counts(crossings, result.events)
    if report:
        report["motion_gate"] = result.gate
        print(json.dumps(report, indent=2), file=sys.stderr if args.out == "-" else sys.stdout)
    return 0


def _run(args: argparse.Namespace, config: cfg.CameraConfig, out: Any, quiet: bool) -> Any:
    """The replay, with its progress line and its annotated video when asked for."""
    from edge.video import annotate, replay
    from edge.video.progress import Progress

    fps = replay.video_fps(args.video) or config.analysis.fps
    stride = max(1, round(fps / config.analysis.fps))
    total = replay.frame_count(args.video)
    if args.frames:
        total = min(total, args.frames) if total else args.frames
    progress = Progress(-(-total // stride), enabled=False if quiet else None)
    overlay = annotate.Overlay(config)
    writer: annotate.VideoWriter | None = None

    def observe(image: Any, result: Any, analyzer: Any) -> None:
        nonlocal writer
        if args.annotate:
            if writer is None:
                size = (image.shape[1], image.shape[0])
                writer = annotate.VideoWriter(args.annotate, fps / stride, size)
            writer.write(overlay.draw(image, result, analyzer))
        progress.tick()

    try:
        result = replay.run(args.video, config, out, limit=args.frames, observe=observe)
    finally:
        if writer is not None:
            writer.close()
    progress.done()
    return result


def _agent(args: argparse.Namespace) -> int:
    from edge.video import agent

    return agent.main(args)
