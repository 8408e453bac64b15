"""Access tokens: signed, expiring, carrying a role and a subject (a unit id or a login).

Tokens are itsdangerous ``URLSafeSerializer`` payloads ``{"r": role, "s": subject, "x": expiry}``
signed with the gateway's secret. They travel as ``Authorization: Bearer <token>`` or, where a
browser cannot set headers (WebSocket, EventSource), as ``?token=``.
"""

from __future__ import annotations

import hmac
import time
from typing import Final, Literal, get_args

import msgspec
from aiohttp import web
from itsdangerous import BadSignature, URLSafeSerializer

from gateway.errors import HttpError
from polewatch import wire

Role = Literal["unit", "operator", "supervisor"]
ROLES: Final[tuple[str, ...]] = get_args(Role)
SALT: Final = "polewatch.token.v1"


class Principal(msgspec.Struct, frozen=True):
    """Who is calling: a role, a subject and when the token expires."""

    r: Role
    s: wire.Ident
    x: float

    @property
    def role(self) -> Role:
        return self.r

    @property
    def subject(self) -> str:
        return self.s


class TokenError(Exception):
    """A token is missing, forged, malformed or expired; the message says which."""


def mint(secret: str, role: str, subject: str, ttl_s: float, *, now: float | None = None) -> str:
    """A token for ``subject`` acting as ``role``, valid ``ttl_s`` seconds."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}; one of {', '.join(ROLES)}")
    expiry = (time.time() if now is None else now) + ttl_s
    try:
        principal = msgspec.convert({"r": role, "s": subject, "x": expiry}, Principal)
    except msgspec.ValidationError as exc:
        raise ValueError(f"invalid subject {subject!r}: {exc}") from None
    return URLSafeSerializer(secret, salt=SALT).dumps(msgspec.to_builtins(principal))


def verify(secret: str, token: str, *, now: float | None = None) -> Principal:
    """The principal of a valid token; :class:`TokenError` otherwise."""
    serializer = URLSafeSerializer(secret, salt=SALT)
    try:
        payload = serializer.loads(token)
    except BadSignature:
        raise TokenError("invalid token") from None
    except Exception:  # itsdangerous may raise decoding errors on garbage
        raise TokenError("malformed token") from None
    # Base64 ignores the spare low bits of its last character, so several spellings decode to
    # the same signed bytes. Only the one spelling this gateway mints is accepted: a token is
    # a string compared by value (lockouts, logs), and must not have look-alikes.
    if not hmac.compare_digest(serializer.dumps(payload), token):
        raise TokenError("invalid token")
    try:
        principal = msgspec.convert(payload, Principal)
    except msgspec.ValidationError:
        raise TokenError("malformed token") from None
    if principal.x <= (time.time() if now is None else now):
        raise TokenError("token expired")
    return principal


def token_of(request: web.Request) -> str | None:
    """The bearer token of a request (header first, then ``?token=``)."""
    header = request.headers.get("Authorization", "")
    if header[:7].lower() == "bearer ":
        return header[7:].strip()
    return request.query.get("token")


def authorize(request: web.Request, secret: str, *roles: Role) -> Principal:
    """The caller's principal if it holds one of ``roles``; 401/403 otherwise."""
    token = token_of(request)
    if not token:
        raise HttpError(401, "missing token (Authorization: Bearer <token> or ?token=)")
    try:
        principal = verify(secret, token)
    except TokenError as exc:
        raise HttpError(401, str(exc)) from None
    if principal.role not in roles:
        raise HttpError(
            403, f"role {principal.role!r} may not do this (needs {' or '.join(roles)})"
        )
    return principal
