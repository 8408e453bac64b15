"""The gateway's settings (section ``[gateway]``, environment ``POLEWATCH_<KEY>``)."""

from __future__ import annotations

from gateway.console.settings import ConsoleSettings
from polewatch.settings import Settings, SettingsError, check_database_url


class GatewaySettings(Settings, frozen=True, kw_only=True):
    """Everything the HTTP/WebSocket front door needs, read once at start."""

    host: str = "127.0.0.1"
    port: int = 8080
    processes: int = 1
    """Gateway processes serving the port together (SO_REUSEPORT), each with its own sockets;
    ``polewatch gateway`` starts and supervises them (see docs/scaling.md)."""
    secret: str = ""
    """Key that signs access tokens; required (``POLEWATCH_SECRET``), at least 16 characters."""
    unit_token_ttl_s: int = 12 * 3600
    """Lifetime of a patrol unit's token (one shift)."""
    operator_token_ttl_s: int = 10 * 3600
    max_body_bytes: int = 16 * 1024
    """Largest request body accepted; bigger ones get 413."""
    max_ws_message_bytes: int = 4 * 1024
    alarm_batch_max: int = 512
    """Most alarms written in one pipelined round trip."""
    alarm_queue_max: int = 20000
    """Alarms waiting to be written before the gateway answers 503 (back-pressure)."""
    position_linger_ms: float = 10.0
    """Units' positions wait this long for others to share their write (0: written at once)."""
    ws_backlog: int = 20
    """Inbox entries sent to a unit that connects without ``last``."""
    ws_heartbeat_s: float = 20.0
    inbox_recheck_s: float = 15.0
    """Every connected unit's inbox is read at least this often, announced or not."""
    gc_freeze_s: float = 1.0
    """How often what is alive is frozen out of the garbage collector's walks (0: never);
    keeps collector pauses short with thousands of sockets (see :mod:`gateway.heap`)."""
    gc_full_s: float = 600.0
    """How often a full collection reclaims cycles among frozen objects (0: never)."""
    pole_refresh_s: float = 5.0
    """How often the pole index' version counter is checked besides the change notification."""
    patrol_speed_mps: float = 8.0
    """Speed assumed for a unit's ETA to the scene (about 30 km/h in city traffic)."""
    public_url: str = ""
    """Base URL printed in status links; empty: relative links."""
    shutdown_grace_s: float = 5.0
    redis_retries: int = 8
    """Retries (with backoff, about 10 s in all) before a request fails with 503."""
    console: ConsoleSettings = ConsoleSettings()
    """The command centre: logins and map (see :mod:`gateway.console.settings`)."""
    metrics_token: str = ""
    """Bearer token Prometheus presents to scrape ``/metrics`` (at least 16 characters);
    empty: ``/metrics`` answers loopback clients only (see docs/gateway-fleet.md)."""
    database_url: str = ""
    """The incident archive (``DATABASE_URL``, as the archiver's): the command centre's
    figures, reports and exports read archived incidents there and recent ones in Redis;
    empty: Redis alone."""
    database_pool_size: int = 4
    """Most connections the gateway process holds to the archive (a pool: one kept open, more
    while requests wait)."""
    database_timeout_s: float = 5.0
    """How long a request waits for an archive connection before answering 503."""
    history_scan: int = 50_000
    """Most audit entries one page of the console's history reads (all zones together) before
    it answers with what it found and a cursor to go on: at most about 0.3 s of gateway CPU
    and 35 ms of Redis CPU (docs/console-history.md), so "More" answers quickly however long
    the audit streams are (5,000,000 entries a zone by default)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_database_url(self.database_url)


def check(settings: GatewaySettings) -> GatewaySettings:
    """Reject settings the gateway cannot run with, naming the key."""
    if len(settings.secret) < 16:
        raise SettingsError(
            "setting 'secret' must be at least 16 characters "
            "(set POLEWATCH_SECRET or 'secret' in the [gateway] section)"
        )
    for key in ("max_body_bytes", "alarm_batch_max", "alarm_queue_max", "port", "processes"):
        if getattr(settings, key) <= 0 and not (key == "port" and settings.port == 0):
            raise SettingsError(f"setting {key!r} must be positive")
    if settings.metrics_token and (
        len(settings.metrics_token) < 16 or not settings.metrics_token.isprintable()
        or any(c.isspace() for c in settings.metrics_token)
    ):  # fmt: skip
        raise SettingsError(
            "setting 'metrics_token' must be empty (loopback scrapes only) or at least 16 "
            "printable characters without spaces"
        )
    if not 1 <= settings.database_pool_size <= 1000:
        raise SettingsError("setting 'database_pool_size' must be 1 to 1000")
    if not 0 < settings.database_timeout_s <= 600:
        raise SettingsError("setting 'database_timeout_s' must be above 0 and at most 600 s")
    if not 1 <= settings.history_scan <= 10_000_000:
        raise SettingsError("setting 'history_scan' must be 1 to 10,000,000 audit entries")
    if settings.processes > 1 and settings.port == 0:
        raise SettingsError("setting 'processes' above 1 needs a fixed 'port' (they share it)")
    return settings
