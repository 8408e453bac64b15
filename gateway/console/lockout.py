"""Console login throttling: lockout with exponential backoff per account and per address,
shared by every gateway replica (in Redis), every attempt audited.

Each attempt is counted *before* its password is checked, in one script call per subject
(``keys.login_attempts``: a hash ``fails``/``until``): the first ``free`` attempts of a
subject go straight through; from then on each attempt that gets through locks the subject
for ``base * 2**n`` seconds (at most ``max``), and attempts while it is locked are answered
429 without a password check. A success clears the account's count and gives the address its
attempt back. So concurrent guesses cannot slip past the count (it is taken atomically before
the slow scrypt check), and a guesser gets a handful of tries, then one per growing pause:
50 wrong passwords in 3 s leave the account locked, whatever the 51st guess is.

The clock is Redis' own (``TIME``), so replicas' clocks do not matter. The counts forget a
subject ``window`` seconds after its last attempt. When Redis cannot be asked the login is
refused (503): the console cannot work without Redis anyway, and a login must never go
unthrottled. Every attempt is appended to ``keys.LOGIN_AUDIT`` (time, login, address,
outcome), capped at about :data:`AUDIT_MAXLEN` entries.
"""

from __future__ import annotations

import math
import time
from typing import Any, Final, Literal

import redis.asyncio as aioredis
from aiohttp import web

from gateway.console.settings import LoginLimits
from gateway.errors import HttpError
from gateway.ratelimit import LIMITER
from polewatch import keys

AUDIT_MAXLEN: Final = 100_000
Outcome = Literal["ok", "wrong", "locked"]

ATTEMPT: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local free, base, cap, window = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]),
                                tonumber(ARGV[4])
local h = redis.call('HMGET', KEYS[1], 'fails', 'until')
local fails, locked = tonumber(h[1]) or 0, tonumber(h[2]) or 0
if locked > now then return {0, locked - now} end
fails = fails + 1
local lock = 0
if fails > free then lock = math.min(base * 2 ^ (fails - free - 1), cap) end
redis.call('HSET', KEYS[1], 'fails', fails, 'until', now + lock)
redis.call('PEXPIRE', KEYS[1], math.floor(math.max(window, lock)))
return {1, lock}
"""
"""KEYS: the subject's hash; ARGV: free attempts, base and cap of the lock (ms), window (ms).
Returns {1, lock_ms} when the attempt may go on, {0, wait_ms} when the subject is locked."""

SUCCEEDED: Final = """
if ARGV[1] == '1' then return redis.call('DEL', KEYS[1]) end
if (tonumber(redis.call('HGET', KEYS[1], 'fails')) or 0) > 0 then
  redis.call('HINCRBY', KEYS[1], 'fails', -1)
end
return 0
"""
"""KEYS: the subject's hash; ARGV[1] '1': forget it (an account), else give one attempt back."""


class Lockout:
    """The login throttle of one gateway (its Redis client, the console's limits)."""

    def __init__(self, limits: LoginLimits) -> None:
        self.limits = limits
        self._attempt: Any = None
        self._succeeded: Any = None

    def _scripts(self, redis: aioredis.Redis) -> None:
        if self._attempt is None:
            self._attempt = redis.register_script(ATTEMPT)
            self._succeeded = redis.register_script(SUCCEEDED)

    async def admit(self, redis: aioredis.Redis, login: str, address: str) -> None:
        """Count an attempt on ``login`` from ``address``; :class:`HttpError` 429 (with
        ``Retry-After``) when either is locked, audited."""
        self._scripts(redis)
        lim = self.limits
        window_ms = lim.window_s * 1000
        base_ms, cap_ms = lim.backoff_s * 1000, lim.backoff_max_s * 1000
        for scope, subject, free in (("account", login, lim.account_free),
                                     ("address", address, lim.address_free)):  # fmt: skip
            ok, wait_ms = await self._attempt(
                keys=[keys.login_attempts(scope, subject)],
                args=[free, base_ms, cap_ms, window_ms],
            )
            if not int(ok):
                retry = max(1, math.ceil(int(wait_ms) / 1000))
                await audit(redis, login, address, "locked", scope=scope, retry_s=retry)
                raise HttpError(
                    429,
                    f"too many login attempts for this {scope}; retry in {retry} s",
                    headers={"Retry-After": str(retry)},
                    retry_after=retry,
                )

    async def settle(self, redis: aioredis.Redis, login: str, address: str, ok: bool) -> None:
        """Record the outcome of an admitted attempt (audited); a success clears the account
        and gives the address its attempt back."""
        self._scripts(redis)
        if ok:
            await self._succeeded(keys=[keys.login_attempts("account", login)], args=["1"])
            await self._succeeded(keys=[keys.login_attempts("address", address)], args=["0"])
        await audit(redis, login, address, "ok" if ok else "wrong")


async def audit(
    redis: aioredis.Redis, login: str, address: str, outcome: Outcome, **detail: str | int
) -> None:
    """Append one login attempt to ``keys.LOGIN_AUDIT``."""
    fields: dict[str, str | int | float] = {
        "ts": round(time.time(), 3), "login": login, "address": address, "outcome": outcome,
        **detail,
    }  # fmt: skip
    await redis.xadd(keys.LOGIN_AUDIT, fields, maxlen=AUDIT_MAXLEN, approximate=True)  # type: ignore[arg-type]


def address_of(request: web.Request) -> str:
    """The caller's address as the rate limits see it (through trusted proxies)."""
    limiter = request.app.get(LIMITER)
    if limiter is not None:
        return limiter.client(request)
    return request.remote or "unknown"
