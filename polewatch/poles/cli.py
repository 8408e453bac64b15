"""``polewatch poles ...`` subcommands (filled in by the pole-registry work)."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    poles = sub.add_parser("poles", help="the pole registry: import, generate, look up")
    poles.add_subparsers(dest="poles_command", required=True, metavar="ACTION")
