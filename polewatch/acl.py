"""Redis ACL users per role, so a stolen edge device cannot read or rewrite dispatch state.

Roles (rules built from :mod:`polewatch.keys`, applied with ``ACL SETUSER name reset on
>password ...``; Redis 7 selectors bind each command set to its own keys):

``edge``
    Video and door agents: ``XADD`` to the alarm streams (the default one and every zone's)
    and the heartbeat stream only (write-only key permission: the streams cannot be read
    back), ``SET``/``EXPIRE`` of snapshot and camera frame keys, ``HSET``/``EXPIRE`` of
    camera hashes, MULTI/EXEC, PING, and ``HGET`` of the pole registry (an agent places its
    camera or door by pole code at start; the codes are painted on the street). Nothing
    else: no reading incidents or streams, no unit inboxes, no ``KEYS``, no ``FLUSHALL``.
``button``
    A pole's alarm button: ``edge`` plus what its feedback needs: ``SUBSCRIBE`` to the incident
    channel, ``GET`` of alarm -> incident records (and of where a zone routed an alarm),
    ``HMGET``/``HGET`` of incident hashes, in every zone.
``gateway``
    The patrol and command-centre API: reads all polewatch keys, appends to every zone's
    alarm, patrol-event and command streams, records a unit's zone (``HSETNX`` of
    ``keys.UNIT_ZONES``), reads unit inboxes, subscribes to the notify channels; never writes
    dispatch state (the dispatcher's functions do).
``dispatcher``
    Everything under the ``pw:`` prefix except the dangerous command category (plus
    ``FUNCTION LOAD`` to install its library).

Zoned keys are matched by the patterns of :func:`polewatch.keys.zone` ``("*")``: in an ACL
key pattern ``{`` is a plain character, so ``pw:{*}:alarms`` matches ``pw:{futian}:alarms``.
Every role may also run ``CLUSTER SLOTS`` and ``COMMAND``, which a Redis Cluster client needs
to find the shards (harmless on a single server).

Agents authenticate with a URL carrying their user: ``redis://edge-7:SECRET@host:6379/0``.
``polewatch acl print`` shows the rules, ``polewatch acl apply`` creates users (generating
passwords unless given) and prints each user's URL. Redis does not replicate ACL users, so
on a Redis Cluster ``apply`` defines them on every node (primaries and replicas, so a failover
keeps them); run it again after adding a node.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import Any, Final
from urllib.parse import quote, urlsplit, urlunsplit

from redis.cluster import RedisCluster
from redis.exceptions import ResponseError

from polewatch import keys

ALL: Final = f"{keys.PREFIX}:*"
ZONED: Final = keys.zone("*")
"""The keys of every named zone, as ACL patterns (``pw:{*}:alarms``...)."""

_SETINFO: Final = "+client|setinfo"
_CLUSTER: Final = ["+cluster|slots", "+command"]
"""What a Redis Cluster client asks on connect: the slot map and the command table."""
_CONNECTION: Final = [
    "+ping", "+client|setname", _SETINFO, "+multi", "+exec", "+discard", *_CLUSTER
]  # fmt: skip
"""Keyless commands every client needs (redis-py names itself on connect)."""

_EDGE: Final = [
    *_CONNECTION,
    f"(+xadd %W~{keys.ALARMS} %W~{ZONED.alarms} %W~{keys.HEARTBEATS})",
    f"(+set +expire %W~{keys.snapshot('*')} %W~{keys.camera_frame('*')})",
    f"(+hset +expire %W~{keys.camera('*')})",
    f"(+hget %R~{keys.poles('*')})",
]

ROLES: Final[dict[str, list[str]]] = {
    "edge": _EDGE,
    "button": [
        *_EDGE,
        "+subscribe",
        "+unsubscribe",
        f"&{keys.INCIDENT_NOTIFY}",
        f"(+get %R~{keys.alarm('*')} %R~{ZONED.alarm('*')})",
        f"(+hget +hmget %R~{keys.incident('*')} %R~{ZONED.incident('*')})",
    ],
    "gateway": [
        "+@connection",
        *_CLUSTER,
        "+@read",
        "+@pubsub",
        "+multi",
        "+exec",
        "+discard",
        f"%R~{ALL}",
        f"&{keys.PREFIX}:notify:*",
        f"&{ZONED.unit_changes}",  # each zone's, for the console's live feed
        "+script|load",
        # its writer appends a batch with one EVALSHA of a script that XADDs (keys declared)
        f"(+xadd +evalsha ~{keys.ALARMS} ~{keys.PATROL_EVENTS} ~{keys.COMMANDS}"
        f" ~{ZONED.alarms} ~{ZONED.patrol_events} ~{ZONED.commands})",
        # the zone a unit belongs to, first writer wins (polewatch.zones.unit_zone)
        f"(+hsetnx %W~{keys.UNIT_ZONES})",
        # its rate limiter: one EVALSHA per check on the token buckets (gateway/ratelimit.py)
        f"(+evalsha +hmget +hset +pexpire +time ~{keys.ratelimit('*', '*')})",
    ],
    "dispatcher": ["+@all", "-@dangerous", "+function|load", f"~{ALL}", f"&{keys.PREFIX}:*"],
}


class AclError(Exception):
    """An unknown role or a bad user specification."""


def rules(role: str) -> list[str]:
    """The ACL rules of ``role`` (without user, password or on/off)."""
    try:
        return list(ROLES[role])
    except KeyError:
        raise AclError(f"unknown role {role!r}; roles: {', '.join(ROLES)}") from None


def setuser_args(username: str, role: str, password: str) -> list[str]:
    """The arguments of ``ACL SETUSER`` that (re)define ``username`` as exactly ``role``."""
    if not password:
        raise AclError("an empty password would let anyone in")
    return [username, "reset", "on", f">{password}", *rules(role)]


def apply(client: Any, username: str, role: str, password: str) -> None:
    """(Re)define the user on a synchronous Redis client with admin rights (a
    ``RedisCluster`` client: on every node of the cluster)."""
    args = setuser_args(username, role, password)
    try:
        _on_every_node(client, "ACL", "SETUSER", *args)
    except ResponseError as exc:
        if _SETINFO not in str(exc):
            raise
        # Redis < 7.2 has no CLIENT SETINFO (and redis-py tolerates its refusal)
        _on_every_node(client, "ACL", "SETUSER", *(a for a in args if a != _SETINFO))


def _on_every_node(client: Any, *command: str) -> None:
    # redis-py would send an ACL command to one node of a cluster; users are not replicated
    every = {"target_nodes": RedisCluster.ALL_NODES} if isinstance(client, RedisCluster) else {}
    client.execute_command(*command, **every)


def user_url(base_url: str, username: str, password: str) -> str:
    """``base_url`` with ``username:password`` as its credentials."""
    parts = urlsplit(base_url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}"
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


# --- CLI ---------------------------------------------------------------------------------
def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    acl = sub.add_parser("acl", help="Redis ACL users for agents and services")
    actions = acl.add_subparsers(dest="acl_command", required=True, metavar="ACTION")
    show = actions.add_parser("print", help="print the ACL SETUSER rules of each role")
    show.add_argument("--role", choices=sorted(ROLES), action="append", help="only these roles")
    show.set_defaults(func=_print)
    do = actions.add_parser(
        "apply", help="create or redefine users (USER=ROLE[:PASSWORD]) and print their URLs"
    )
    do.add_argument("users", nargs="+", metavar="USER=ROLE[:PASSWORD]")
    do.add_argument("--redis-url", help="admin connection (default: settings redis_url)")
    do.add_argument("--config", help="polewatch settings file")
    do.set_defaults(func=_apply)


def _print(args: argparse.Namespace) -> int:
    for role in args.role or ROLES:
        print(f"# {role}")
        print("ACL SETUSER <user> reset on ><password> " + " ".join(rules(role)))
    return 0


def parse_user(spec: str) -> tuple[str, str, str]:
    """``USER=ROLE[:PASSWORD]`` -> (user, role, password); a missing password is generated."""
    user, sep, rest = spec.partition("=")
    role, _, password = rest.partition(":")
    if not sep or not user or not role:
        raise AclError(f"{spec!r}: expected USER=ROLE[:PASSWORD]")
    rules(role)
    return user, role, password or secrets.token_urlsafe(24)


def _apply(args: argparse.Namespace) -> int:
    from polewatch import settings
    from polewatch.connection import close_sync, connect_sync

    try:
        users = [parse_user(spec) for spec in args.users]
        conf = settings.load(
            settings.Settings,
            section="acl",
            config_file=args.config,
            overrides={"redis_url": args.redis_url} if args.redis_url else None,
        )
    except (AclError, settings.SettingsError) as exc:
        print(f"polewatch acl: {exc}", file=sys.stderr)
        return 2
    client = connect_sync(conf.redis_url, name="acl", cluster=conf.redis_cluster)
    try:
        for user, role, password in users:
            apply(client, user, role, password)
            print(f"{user}\t{role}\t{user_url(conf.redis_url, user, password)}")
    finally:
        close_sync(client)
    return 0
