"""The history's text search over the archive: it finds exactly what the console's Redis search
would (a field, or the detail of the event that finished the incident, in any case; LIKE's
own characters are plain text), in the history's order and pages, whether the text is common
(found among the newest) or rare (found through the trigram indexes of migration 005), and a
text found nowhere is answered from those indexes instead of by reading every incident."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from psycopg.types.json import Jsonb

from analytics import archive

STATES = ("resolved", "closed", "cancelled")
T0 = 1_767_225_600.0
# id, state, pole, type, district, grid, text, [(event, detail)] after "new" (times: +i s)
INCIDENTS: list[tuple[Any, ...]] = [
    ("a01", "closed", "1012345", "citizen_sos", "福田区", "FT-01", "有人在灯杆附近求助",
     [("resolved", "handled on scene"), ("closed", None)]),
    ("a02", "cancelled", "1012346", "call", "Futian", "FT-02", None,
     [("cancelled", "Duplicate call 50%_off")]),
    ("a03", "closed", None, "door_forced", "Luohu", None, "Straße ÄBC \\ back-slash",
     [("resolved", "转交派出所"), ("closed", "evaluated 4")]),
    ("a04", "resolved", "2000001", "intrusion", "南山区", "NS-07", "gate\nnorth",
     [("resolved", "first try"), ("reopened", None), ("resolved", "second try")]),
    ("a05", "closed", "2000002", "crowd", "Nanshan", "NS-08", "a_b%c",
     [("closed", "FIGHT near gate")]),
    ("a06", "new", "2000003", "crowd", "Nanshan", "NS-08", "open: not finished", []),
    ("b07", "cancelled", "3000001", "tamper", "Bao'an", "BA-01", "camera covered",
     [("cancelled", "camera cleaned")]),
    ("b08", "closed", "3000002", "loitering", "宝安区", "BA-02", "loitering 深南大道",
     [("closed", None)]),
] + [
    (f"c{n:02d}", "closed", f"40000{n:02d}", "call", "Longgang", "LG-01", f"routine {n}",
     [("closed", "routine close")])
    for n in range(12)
]  # fmt: skip


@pytest.fixture
def archive_url(database_url: str) -> Iterator[str]:
    """An archive holding :data:`INCIDENTS` (finished at created + number of events)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        for n, (iid, state, pole, kind, district, grid, text, events) in enumerate(INCIDENTS):
            created = T0 + n * 60
            times = {"new": created}
            for seq, (event, _) in enumerate(events, start=2):
                times.setdefault(event, created + seq)
            conn.execute(
                "INSERT INTO incident (id, state, priority, type, merge_group, created, pole,"
                " district, grid, text, times, geom) VALUES (%s, %s, 2, %s, %s, %s, %s, %s, %s,"
                " %s, %s, ST_SetSRID(ST_MakePoint(114.05, 22.54), 4326))",
                (iid, state, kind, kind, created, pole, district, grid, text,
                 Jsonb(times)),
            )  # fmt: skip
            rows = [(iid, 1, "new", created, None)] + [
                (iid, seq, event, created + seq, detail)
                for seq, (event, detail) in enumerate(events, start=2)
            ]
            conn.cursor().executemany(
                "INSERT INTO incident_event (incident, seq, event, ts, detail)"
                " VALUES (%s, %s, %s, %s, %s)",
                rows,
            )
        conn.execute("ANALYZE")
    yield database_url


def expected(text: str) -> list[str]:
    """The Redis side's rule (gateway.history._matches), over :data:`INCIDENTS`."""
    needle = text.lower()
    found = []
    for n, (iid, state, pole, kind, district, grid, desc, events) in enumerate(INCIDENTS):
        if state not in STATES:
            continue
        finishing = [(seq, d) for seq, (e, d) in enumerate(events, start=2) if e == state]
        first_seq, detail = finishing[0][0], finishing[-1][1]  # times: first; detail: last
        fields = (iid, pole, kind, district, grid, desc, detail)
        if any(needle in f.lower() for f in fields if f):
            found.append((T0 + n * 60 + first_seq, iid))
    return [iid for _, iid in sorted(found, reverse=True)]


async def search(url: str, text: str, limit: int) -> list[str]:
    """Every page of the search, ``limit`` at a time, as the console follows ``next``."""
    ids: list[str] = []
    before = None
    async with await psycopg.AsyncConnection.connect(url) as conn:
        while True:
            page = await archive.finished_incidents(conn, STATES, text, limit + 1, before)
            ids += [f.incident.id for f in page[:limit]]
            if len(page) <= limit:
                return ids
            before = (page[limit - 1].finished, page[limit - 1].incident.id)


TEXTS = ["", "zzqx", "无此文字", "福田", "futian", "FT-0", "1012345", "handled", "转交派出所",
         "evaluated", "first try", "second try", "50%_off", "%", "_", "\\", "a_b", "straße",
         "äbc", "äbc \\", "fight", "gate\nnorth", "\nnorth", "ft-01\nfu", "深南大道", "routine",
         "routine close", "not finished", "R"]  # fmt: skip


@pytest.mark.parametrize("window", [3, archive.WINDOW])
async def test_each_text_finds_what_the_redis_search_would_in_order_and_pages(
    archive_url: str, window: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A window of 3 sends most texts past the newest incidents, through the indexes.
    monkeypatch.setattr(archive, "WINDOW", window)
    for text in TEXTS:
        want = expected(text)
        assert await search(archive_url, text, 50) == want, text
        assert await search(archive_url, text, 2) == want, text
    assert expected("转交派出所") == expected("first try") == expected("zzqx") == []
    assert expected("second try") == ["a04"] and expected("50%_off") == ["a02"]


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    text=st.text(alphabet="abcdfgrt%_\\ -\n01ß福田深南", min_size=1, max_size=4),
    window=st.sampled_from([2, archive.WINDOW]),
    limit=st.integers(1, 7),
)
def test_any_text_finds_what_the_redis_search_would(
    archive_url: str, text: str, window: int, limit: int
) -> None:
    saved = archive.WINDOW
    archive.WINDOW = window
    try:
        assert asyncio.run(search(archive_url, text, limit)) == expected(text)
    finally:
        archive.WINDOW = saved


def test_a_text_is_looked_up_in_the_trigram_indexes(archive_url: str) -> None:
    """The candidates' expressions are the indexes' (with scans that need no index turned off,
    only those indexes can serve them)."""
    columns = ", ".join(archive._INCIDENT_COLUMNS.values())
    parts = {
        "incident_text_search": archive._IN_FIELDS.format(matched="true"),
        "incident_event_detail_search": archive._IN_DETAIL.format(matched="true"),
    }
    with psycopg.connect(archive_url) as conn:
        for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan"):
            conn.execute(f"SET {setting} = off")
        for index, part in parts.items():
            query = archive._FINISHED.format(columns=columns, text=part, before="")
            params = {"states": list(STATES), "like": "%zzqx%", "limit": 51}
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + query, params))
            assert f"Bitmap Index Scan on {index}" in plan, plan
        # Chinese characters are letters to pg_trgm (the embedded cluster's LC_CTYPE is
        # C.UTF-8): a Chinese text is served by the index, not by reading all of it.
        row = conn.execute("SELECT show_trgm('深南大道')").fetchone()
        assert row is not None and len(row[0]) == 5
