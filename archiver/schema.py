"""Schema migrations: the numbered SQL files of ``migrations/``, applied in order, once.

Each file runs in its own transaction and is recorded in ``schema_migration``; a
transaction-level advisory lock lets several archivers start at once. ``polewatch archiver
--migrate-only`` applies them and exits.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import psycopg

MIGRATIONS: Final = Path(__file__).resolve().parent / "migrations"
_LOCK: Final = 0x706F6C65  # "pole": the advisory lock of the migrations


def migration_files() -> list[tuple[int, Path]]:
    """``(number, path)`` of every migration, in order."""
    found = []
    for path in MIGRATIONS.glob("*.sql"):
        number, _, _ = path.stem.partition("_")
        if not number.isdigit():
            raise ValueError(f"migration {path.name}: the name must start with a number")
        found.append((int(number), path))
    found.sort()
    return found


async def migrate(conn: psycopg.AsyncConnection[object]) -> list[int]:
    """Apply the migrations ``conn``'s database lacks; returns their numbers."""
    applied: list[int] = []
    for number, path in migration_files():
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migration ("
                " number integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            cur = await conn.execute("SELECT 1 FROM schema_migration WHERE number = %s", (number,))
            if await cur.fetchone():
                continue
            await conn.execute(path.read_text().encode())
            await conn.execute(
                "INSERT INTO schema_migration (number, name) VALUES (%s, %s)", (number, path.name)
            )
            applied.append(number)
    return applied
