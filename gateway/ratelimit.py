"""Rate limits on the citizen door: token buckets in Redis, one script call per request.

A prank flood is stopped twice: per client (its address) and per pole. ``POST /api/alarms``
takes a token from the caller's alarm bucket *and* from the pole's bucket, atomically (the
pole's is only touched when the caller still has one, so a flooder cannot drain a pole for
others beyond its own allowance). The other citizen pages (status, event stream, help page)
take from the caller's looser read bucket. A refusal is ``429`` with ``Retry-After`` and a
message; another pole, or another caller, is not affected.

The buckets live in Redis (``keys.ratelimit``), so every gateway replica shares them, and the
clock is Redis' own (``TIME``), so replicas' clocks do not matter. On a Redis Cluster the two
buckets of an alarm are on different shards, where one script cannot reach both: there the
caller's is asked first, then the pole's, and a token the caller gave for an alarm the pole
refuses is given back, so the outcome is the same. If Redis cannot be asked,
the request goes through: an emergency system must not refuse a real alarm because its abuse
control is down (the write that follows answers for Redis).

Callers on loopback (the demo, kiosks, tests) are not limited per client unless configured;
behind a reverse proxy list it in ``trusted_proxies`` so the client is taken from
``X-Forwarded-For`` (the right-most address the proxies did not add).
"""

from __future__ import annotations

import ipaddress
import logging
import math
from typing import Annotated, Any, Final

import msgspec
from aiohttp import web
from msgspec import Meta

from gateway.errors import REDIS_DOWN, Handler, error_response
from gateway.state import GATEWAY
from polewatch import keys
from polewatch.settings import Settings, load

log = logging.getLogger(__name__)

Rate = Annotated[float, Meta(gt=0)]
Burst = Annotated[int, Meta(ge=1)]


class RateLimitSettings(Settings, frozen=True, kw_only=True):
    """Section ``[ratelimit]``; environment ``POLEWATCH_RATELIMIT_<KEY>``."""

    ratelimit_enabled: bool = True
    ratelimit_client_alarms_burst: Burst = 10
    """Alarms one caller may raise at once ..."""
    ratelimit_client_alarms_per_min: Rate = 6.0
    """... and then per minute (one every 10 s)."""
    ratelimit_pole_alarms_burst: Burst = 10
    """Alarms at one pole at once, from anyone (later reports merge into the same incident)."""
    ratelimit_pole_alarms_per_min: Rate = 10.0
    ratelimit_client_reads_burst: Burst = 120
    """Status polls, event streams and help pages of one caller at once ..."""
    ratelimit_client_reads_per_min: Rate = 120.0
    ratelimit_exempt: tuple[str, ...] = ("127.0.0.1/32", "::1/128")
    """Networks whose callers have no per-client limit (the pole limit still applies)."""
    ratelimit_trusted_proxies: tuple[str, ...] = ()
    """Networks of reverse proxies whose ``X-Forwarded-For`` names the real client."""


BUCKET: Final = """
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local left = {}
for i, key in ipairs(KEYS) do
  local cap, rate = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  local b = redis.call('HMGET', key, 'tokens', 'ts')
  local tokens = math.min(cap, (tonumber(b[1]) or cap) + (now - (tonumber(b[2]) or now)) * rate)
  if tokens < 1 then
    return {i, math.ceil((1 - tokens) / rate * 1000)}
  end
  left[i] = tokens - 1
end
for i, key in ipairs(KEYS) do
  local cap, rate = tonumber(ARGV[2 * i - 1]), tonumber(ARGV[2 * i])
  redis.call('HSET', key, 'tokens', tostring(left[i]), 'ts', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(cap / rate * 1000) + 1000)
end
return {0, 0}
"""
"""Token buckets ``KEYS`` with (capacity, tokens per second) pairs in ``ARGV``: take one
from each, or from none; returns ``{0, 0}`` or ``{index of the empty bucket, wait ms}``."""

GIVE_BACK: Final = """
local tokens = tonumber(redis.call('HGET', KEYS[1], 'tokens'))
if tokens then
  redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(tonumber(ARGV[1]), tokens + 1)))
end
"""
"""Return the token taken from bucket ``KEYS[1]`` of capacity ``ARGV[1]``."""

LIMITS: Final = web.AppKey("ratelimit", RateLimitSettings)
Networks = list[ipaddress.IPv4Network | ipaddress.IPv6Network]
CITIZEN_READS: Final = ("/api/alarms/", "/p/")


class Limiter:
    """Checks requests against the buckets of :class:`RateLimitSettings`."""

    def __init__(self, settings: RateLimitSettings) -> None:
        self.settings = settings
        self.exempt: Networks = [ipaddress.ip_network(n) for n in settings.ratelimit_exempt]
        self.proxies: Networks = [
            ipaddress.ip_network(n) for n in settings.ratelimit_trusted_proxies
        ]
        self._script: Any = None
        self._give_back: Any = None

    def client(self, request: web.Request) -> str:
        """The caller's address: the peer, or behind trusted proxies the forwarded client."""
        peer = request.remote or "unknown"
        if not self.proxies or not _within(peer, self.proxies):
            return peer
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",")]
        for hop in reversed([h for h in hops if h]):
            if not _within(hop, self.proxies):
                return hop
        return peer

    async def check(
        self, request: web.Request, *, alarm: bool, pole: str | None = None
    ) -> web.Response | None:
        """None when the request may go on; a 429 answer when the caller (or, for an alarm,
        the pole) is over its limit."""
        s = self.settings
        client = self.client(request)
        buckets: list[tuple[str, int, float, str]] = []
        if not _within(client, self.exempt):
            if alarm:
                buckets.append((keys.ratelimit("alarms", client), s.ratelimit_client_alarms_burst,
                                s.ratelimit_client_alarms_per_min,
                                "too many alarms from your address"))  # fmt: skip
            else:
                buckets.append((keys.ratelimit("reads", client), s.ratelimit_client_reads_burst,
                                s.ratelimit_client_reads_per_min,
                                "too many requests from your address"))  # fmt: skip
        if pole is not None:
            buckets.append((keys.ratelimit("pole", pole), s.ratelimit_pole_alarms_burst,
                            s.ratelimit_pole_alarms_per_min,
                            f"too many alarms at pole {pole} right now; help has been asked for "
                            "there already"))  # fmt: skip
        if not buckets:
            return None
        gw = request.app[GATEWAY]
        redis = gw.need_redis()
        if self._script is None:
            self._script = redis.register_script(BUCKET)
            self._give_back = redis.register_script(GIVE_BACK)
        args: list[float] = []
        for _, burst, per_min, _ in buckets:
            args += [burst, per_min / 60.0]
        try:
            if gw.settings.redis_cluster and len(buckets) > 1:
                empty, wait_ms = await self._one_by_one([(b[0], b[1]) for b in buckets], args)
            else:
                empty, wait_ms = await self._script(keys=[b[0] for b in buckets], args=args)
        except REDIS_DOWN as exc:
            log.warning("rate limit not checked (Redis unavailable: %s); request let through", exc)
            return None
        if not empty:
            return None
        retry = max(1, math.ceil(int(wait_ms) / 1000))
        return error_response(429, f"{buckets[int(empty) - 1][3]}; retry in {retry} s",
                              headers={"Retry-After": str(retry)}, retry_after=retry)  # fmt: skip

    async def _one_by_one(self, buckets: list[tuple[str, int]], args: list[float]) -> Any:
        """:data:`BUCKET` on each bucket in turn (cluster shards), all or nothing."""
        for i, (key, _) in enumerate(buckets):
            empty, wait_ms = await self._script(keys=[key], args=args[2 * i : 2 * i + 2])
            if empty:
                for taken, capacity in buckets[:i]:
                    await self._give_back(keys=[taken], args=[capacity])
                return i + 1, wait_ms
        return 0, 0


def _within(address: str, networks: Networks) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


async def _pole_of(request: web.Request) -> str | None:
    """The pole code of an alarm body (None when there is none: the handler says why)."""
    data = await request.read()  # too large: 413 from here, as from the handler
    try:
        body = msgspec.json.decode(data)
    except msgspec.DecodeError:
        return None
    code = body.get("pole") if isinstance(body, dict) else None
    if not isinstance(code, str) or not 0 < len(code) <= 64:
        return None
    poles = request.app[GATEWAY].poles
    pole = poles.get(code) if poles is not None else None
    return pole.code if pole is not None else code


@web.middleware
async def limit(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The middleware: alarms and citizen reads go through :meth:`Limiter.check`."""
    limiter: Limiter | None = request.app.get(LIMITER)
    refusal = None
    if limiter is not None:
        if request.method == "POST" and request.path == "/api/alarms":
            refusal = await limiter.check(request, alarm=True, pole=await _pole_of(request))
        elif request.method == "GET" and request.path.startswith(CITIZEN_READS):
            refusal = await limiter.check(request, alarm=False)
    return refusal or await handler(request)


LIMITER: Final = web.AppKey("ratelimiter", Limiter)


def install(app: web.Application, settings: RateLimitSettings | None = None) -> None:
    """Add the limits to the gateway ``app`` (settings from the environment and config file
    when not given; ``ratelimit_enabled = false`` installs nothing)."""
    settings = settings or load(RateLimitSettings, section="ratelimit")
    app[LIMITS] = settings
    if settings.ratelimit_enabled:
        app[LIMITER] = Limiter(settings)
        app.middlewares.append(limit)
