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
    replay.add_argument("--out", required=True, help="JSON lines output ('-' for stdout)")
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
    try:
        result = replay.run(args.video, config, out, limit=args.frames)
    except replay.VideoError as exc:
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


def _agent(args: argparse.Namespace) -> int:
    from edge.video import agent

    return agent.main(args)
