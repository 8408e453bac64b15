"""``polewatch console-user LOGIN``: the settings lines of a command-centre login (the password
is asked for, or read from standard input, and only its scrypt hash is printed)."""

from __future__ import annotations

import argparse
import getpass
import json
import re
import sys


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    user = sub.add_parser("console-user", help="make a command-centre login for the settings")
    user.add_argument("login", help="the login (letters, digits, _ . @ -)")
    user.add_argument("--role", choices=["operator", "supervisor"], default="operator")
    user.add_argument("--env", action="store_true", help="print POLEWATCH_CONSOLE JSON instead")
    user.set_defaults(func=_console_user)


def _console_user(args: argparse.Namespace) -> int:
    from gateway.console.accounts import hash_password

    if not re.fullmatch(r"[A-Za-z0-9_.@-]{1,64}", args.login):
        print("polewatch: a login is 1-64 letters, digits or _ . @ -", file=sys.stderr)
        return 2
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {args.login}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    if len(password) < 8:
        print("polewatch: use a password of at least 8 characters", file=sys.stderr)
        return 2
    hashed = hash_password(password)
    if args.env:
        users = {"users": {args.login: {"role": args.role, "password": hashed}}}
        print(f"POLEWATCH_CONSOLE='{json.dumps(users)}'")
    else:
        print(
            f'[gateway.console.users."{args.login}"]\nrole = "{args.role}"\npassword = "{hashed}"'
        )
    return 0
