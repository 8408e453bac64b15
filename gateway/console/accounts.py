"""Command-centre logins: scrypt password hashes from the settings, exchanged for the
gateway's own signed tokens (:mod:`gateway.auth`).

The browser keeps the token in ``sessionStorage`` and sends it as a bearer header (or as
``?token=`` where a browser cannot set headers: EventSource, images); the page's
Content-Security-Policy forbids inline scripts, so injected markup cannot read it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
from typing import Annotated, Final

import msgspec
from aiohttp import web
from msgspec import Meta

from gateway import bodies
from gateway.auth import authorize, mint, verify
from gateway.console.lockout import Lockout, address_of
from gateway.console.settings import Login
from gateway.errors import HttpError, json_response
from gateway.openapi import api, read_body
from gateway.state import GATEWAY

SCRYPT_N: Final = 2**14
SCRYPT_R: Final = 8
SCRYPT_P: Final = 1
_DUMMY: Final = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA==$" + "A" * 43 + "="
"""Checked when the login is unknown, so a wrong login costs as long as a wrong password."""

routes = web.RouteTableDef()


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` of ``password`` (base64 salt and hash)."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches the ``stored`` hash; ``False`` for a malformed hash."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        want = base64.b64decode(digest, validate=True)
        got = hashlib.scrypt(
            password.encode(),
            salt=base64.b64decode(salt, validate=True),
            n=int(n), r=int(r), p=int(p), dklen=len(want), maxmem=2**26,
        )  # fmt: skip
    except ValueError:
        return False
    return hmac.compare_digest(got, want)


class Credentials(bodies.Body, frozen=True):
    """A command-centre login."""

    login: Login
    password: Annotated[str, Meta(min_length=1, max_length=256)]


class Session(msgspec.Struct, kw_only=True):
    """What a successful login returns."""

    token: str
    login: str
    role: str
    expires: float


@routes.post("/api/console/login")
@api(tag="console", body=Credentials, response=Session,
     answers={401: "Unknown login or wrong password",
              429: "Too many attempts on this account or from this address"})  # fmt: skip
async def login(request: web.Request) -> web.Response:
    """Exchange a login and password for an operator or supervisor token; attempts are
    throttled per account and per address (lockout with backoff) and audited."""
    gw = request.app[GATEWAY]
    body: Credentials = await read_body(request)
    redis, address = gw.need_redis(), address_of(request)
    lockout = Lockout(gw.settings.console.login)
    await lockout.admit(redis, body.login, address)
    account = gw.settings.console.users.get(body.login)
    stored = account.password if account else _DUMMY
    ok = await asyncio.to_thread(check_password, body.password, stored)  # scrypt: ~50 ms
    ok = ok and account is not None
    await lockout.settle(redis, body.login, address, ok)
    if account is None or not ok:
        raise HttpError(401, "unknown login or wrong password")
    ttl = gw.settings.operator_token_ttl_s
    token = mint(gw.settings.secret, account.role, body.login, ttl)
    expires = verify(gw.settings.secret, token).x
    return json_response(
        Session(token=token, login=body.login, role=account.role, expires=expires),
        headers={"Cache-Control": "no-store"},
    )


@routes.get("/api/console/me")
@api(tag="console", roles=("operator", "supervisor"), response=Session, store=False)
async def whoami(request: web.Request) -> web.Response:
    """Who the token belongs to (the page checks a stored token with this)."""
    gw = request.app[GATEWAY]
    who = authorize(request, gw.settings.secret, "operator", "supervisor")
    token = request.headers.get("Authorization", "")[7:] or request.query.get("token", "")
    return json_response(Session(token=token, login=who.subject, role=who.role, expires=who.x))


def demo_console(login: str, password: str, role: str = "supervisor") -> str:
    """``POLEWATCH_CONSOLE`` (JSON) holding one login, for ``polewatch demo``."""
    account = {"role": role, "password": hash_password(password)}
    return msgspec.json.encode({"users": {login: account}}).decode()
