"""Store-and-forward: alarms and heartbeats an agent could not hand to Redis, kept on disk.

Why a segment file and not sqlite3: the spool is a strict FIFO written only while Redis is
away, read front to back once, and its one hard requirement is that a crash or a torn write
never loses the good records before the damage. A length-prefixed, checksummed append-only
file gives exactly that with one ``write`` + ``fsync`` per batch, a decoder small enough to
property-test (:func:`scan`), and bytes a non-Python tool can read; sqlite3 would add a WAL,
page management and a schema for what is a queue.

Layout of a spool directory::

    head              "<generation> <offset>\\n": the first record not yet confirmed in Redis
    spool-<gen>.log   frames: u32 big-endian payload length, u32 CRC-32 of the payload, payload

A payload is a MessagePack array ``[message, snapshot]``: the wire message (an
:class:`~polewatch.wire.Alarm` or :class:`~polewatch.wire.Heartbeat`) and an optional JPEG.

Records are removed (the head advances, written atomically by rename) only after the publisher
has confirmed them in Redis, so a crash replays at most the batch that was in flight; the
dispatcher is idempotent on the alarm id for that window. When the spool is full (``max_bytes``
or ``max_records``) it compacts to 90 % of the limit by dropping the oldest heartbeats first,
then the oldest alarms, counting each and logging every dropped alarm id at ERROR: the newest
alarms describe what is happening now. A corrupt or truncated tail (power cut mid-write) is
detected by :func:`scan`, reported, counted and cut off; the records before it are kept.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, Protocol

import msgspec

from polewatch import wire

log = logging.getLogger(__name__)

HEADER: Final = struct.Struct(">II")
MAX_RECORD: Final = 32 * 1024 * 1024
"""A frame announcing a longer payload is corruption, not a record."""
Fsync = Literal["always", "never"]


class SpoolError(Exception):
    """The spool directory cannot be used (unreadable head, I/O error)."""


class Record(msgspec.Struct, frozen=True, array_like=True):
    """One spooled message and the snapshot that goes with it (alarms only)."""

    message: wire.Alarm | wire.Heartbeat
    snapshot: bytes | None = None

    @property
    def is_alarm(self) -> bool:
        return isinstance(self.message, wire.Alarm)


class Scan(msgspec.Struct, frozen=True):
    """What :func:`scan` found: the good frames, where they end, and why it stopped early."""

    frames: list[tuple[int, bytes]]
    """``(offset, payload)`` of each intact frame, in order."""
    end: int
    """Offset just past the last intact frame."""
    error: str | None = None
    """Why the bytes after ``end`` are not frames (``None``: the data ended cleanly)."""


_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(Record)


def frame(record: Record) -> bytes:
    """The bytes of one record as stored: header then payload."""
    payload = _encoder.encode(record)
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def scan(data: bytes | bytearray | memoryview, base: int = 0) -> Scan:
    """Split ``data`` into frames; stop at the first damaged one and say why. Never raises."""
    view = memoryview(data)
    frames: list[tuple[int, bytes]] = []
    pos = 0
    size = len(view)
    while pos < size:
        if size - pos < HEADER.size:
            return Scan(frames, base + pos, f"truncated header at offset {base + pos}")
        length, crc = HEADER.unpack_from(view, pos)
        if length > MAX_RECORD:
            return Scan(frames, base + pos, f"impossible length {length} at offset {base + pos}")
        start = pos + HEADER.size
        if size - start < length:
            return Scan(frames, base + pos, f"truncated record at offset {base + pos}")
        payload = bytes(view[start : start + length])
        if zlib.crc32(payload) != crc:
            return Scan(frames, base + pos, f"checksum mismatch at offset {base + pos}")
        frames.append((base + pos, payload))
        pos = start + length
    return Scan(frames, base + pos)


def decode_record(payload: bytes) -> Record:
    """Decode one payload; raises :class:`wire.WireError` when it is not a valid record."""
    try:
        return _decoder.decode(payload)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise wire.WireError(f"invalid spool record: {exc}") from None


class Store(Protocol):
    """What the publisher needs of a spool (on disk or in memory)."""

    def __len__(self) -> int: ...
    def append(self, records: Sequence[Record]) -> None: ...
    def peek(self, n: int) -> list[tuple[int, Record]]:
        """Up to ``n`` records from the front, each with its sequence number for :meth:`ack`."""
        ...

    def ack(self, through: int) -> None:
        """Remove the front records with sequence numbers up to ``through`` (confirmed sent)."""
        ...

    def close(self) -> None: ...


class Counters(msgspec.Struct):
    dropped_alarms: int = 0
    dropped_heartbeats: int = 0
    corrupt: int = 0
    """Damaged tails and undecodable records found at open."""


class _Bounded:
    """The overflow policy shared by both stores: oldest heartbeats first, then oldest alarms."""

    def __init__(self, max_bytes: int, max_records: int) -> None:
        if max_bytes <= 0 or max_records <= 0:
            raise ValueError("spool limits must be positive")
        self.max_bytes = max_bytes
        self.max_records = max_records
        self.counters = Counters()

    def _victims(self, sizes: Sequence[tuple[int, bool]]) -> set[int]:
        """Indexes to drop so ``sizes`` (bytes, is_alarm) fits in 90 % of the limits."""
        count, total = len(sizes), sum(s for s, _ in sizes)
        if count <= self.max_records and total <= self.max_bytes:
            return set()
        want_n, want_b = int(self.max_records * 0.9), int(self.max_bytes * 0.9)
        drop: set[int] = set()
        for alarms in (False, True):
            for i, (size, is_alarm) in enumerate(sizes):
                if count <= want_n and total <= want_b:
                    return drop
                if is_alarm == alarms:
                    drop.add(i)
                    count, total = count - 1, total - size
        return drop

    def _count_drop(self, record: Record) -> None:
        if isinstance(record.message, wire.Alarm):
            self.counters.dropped_alarms += 1
            log.error("spool full: dropped alarm %s", record.message.id)
        else:
            self.counters.dropped_heartbeats += 1


class MemorySpool(_Bounded):
    """A spool that does not survive a restart (tests, agents without a writable disk)."""

    def __init__(self, *, max_bytes: int = 64 << 20, max_records: int = 100_000) -> None:
        super().__init__(max_bytes, max_records)
        self._items: deque[tuple[int, Record, int]] = deque()
        self._seq = 0

    def __len__(self) -> int:
        return len(self._items)

    def append(self, records: Sequence[Record]) -> None:
        for record in records:
            self._seq += 1
            self._items.append((self._seq, record, len(frame(record))))
        drop = self._victims([(size, r.is_alarm) for _, r, size in self._items])
        if drop:
            kept: deque[tuple[int, Record, int]] = deque()
            for i, item in enumerate(self._items):
                if i in drop:
                    self._count_drop(item[1])
                else:
                    kept.append(item)
            self._items = kept

    def peek(self, n: int) -> list[tuple[int, Record]]:
        return [(seq, record) for seq, record, _ in list(self._items)[:n]]

    def ack(self, through: int) -> None:
        while self._items and self._items[0][0] <= through:
            self._items.popleft()

    def close(self) -> None:
        pass


class FileSpool(_Bounded):
    """The on-disk spool in ``directory`` (created if missing); see the module docstring."""

    def __init__(
        self,
        directory: str | Path,
        *,
        max_bytes: int = 64 << 20,
        max_records: int = 100_000,
        fsync: Fsync = "always",
    ) -> None:
        super().__init__(max_bytes, max_records)
        self.directory = Path(directory)
        self.fsync = fsync
        self._seq = 0
        # (seq, offset, size, is_alarm) of each live record, oldest first
        self._index: deque[tuple[int, int, int, bool]] = deque()
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._gen, head = self._read_head()
            self._open_log(head)
        except OSError as exc:
            raise SpoolError(f"spool {self.directory}: {exc}") from exc

    # --- public surface ------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._index)

    @property
    def alarms(self) -> int:
        """How many of the spooled records are alarms."""
        return sum(1 for *_, is_alarm in self._index if is_alarm)

    def append(self, records: Sequence[Record]) -> None:
        if not records:
            return
        chunks = [frame(r) for r in records]
        offset = self._file.seek(0, os.SEEK_END)
        self._file.write(b"".join(chunks))
        self._sync(self._file)
        for record, chunk in zip(records, chunks, strict=True):
            self._seq += 1
            self._index.append((self._seq, offset, len(chunk), record.is_alarm))
            offset += len(chunk)
        drop = self._victims([(size, alarm) for _, _, size, alarm in self._index])
        if drop:
            self._compact(drop)

    def peek(self, n: int) -> list[tuple[int, Record]]:
        out: list[tuple[int, Record]] = []
        for seq, offset, size, _ in list(self._index)[:n]:
            self._file.seek(offset)
            found = scan(self._file.read(size), offset)
            out.append((seq, decode_record(found.frames[0][1])))
        return out

    def ack(self, through: int) -> None:
        popped = False
        while self._index and self._index[0][0] <= through:
            self._index.popleft()
            popped = True
        if not popped:
            return
        if self._index:
            self._write_head(self._gen, self._index[0][1])
        else:
            # Truncate before moving the head back to 0: a crash in between leaves a head past
            # the end of an empty file, which open() reads as empty (never as a replay).
            self._file.truncate(0)
            self._sync(self._file)
            self._write_head(self._gen, 0)

    def close(self) -> None:
        self._file.close()

    # --- files ---------------------------------------------------------------------------
    def _log_path(self, gen: int) -> Path:
        return self.directory / f"spool-{gen}.log"

    def _read_head(self) -> tuple[int, int]:
        path = self.directory / "head"
        if not path.exists():
            return 0, 0
        try:
            gen_s, off_s = path.read_text().split()
            return int(gen_s), int(off_s)
        except ValueError:
            raise SpoolError(f"spool head {path} is damaged; inspect it, then delete it") from None

    def _write_head(self, gen: int, offset: int) -> None:
        tmp = self.directory / "head.tmp"
        with tmp.open("w") as fh:
            fh.write(f"{gen} {offset}\n")
            self._sync(fh)
        os.replace(tmp, self.directory / "head")
        self._sync_dir()

    def _open_log(self, head: int) -> None:
        for stale in self.directory.glob("spool-*.log"):
            if stale != self._log_path(self._gen):
                stale.unlink()  # left by a compaction that crashed before switching heads
        self._file = self._log_path(self._gen).open("a+b")
        self._file.seek(0)
        data = self._file.read()
        if head > len(data):
            head = 0  # emptied by ack() just before a crash
            data = b""
        found = scan(data[head:], head)
        if found.error is not None:
            self.counters.corrupt += 1
            log.error(
                "spool %s: %s; keeping %d records, cutting %d bytes",
                self.directory,
                found.error,
                len(found.frames),
                len(data) - found.end,
            )
            self._file.truncate(found.end)
            self._sync(self._file)
        for offset, payload in found.frames:
            try:
                record = decode_record(payload)
            except wire.WireError as exc:
                self.counters.corrupt += 1
                log.error("spool %s: skipping record at %d: %s", self.directory, offset, exc)
                continue
            self._seq += 1
            size = HEADER.size + len(payload)
            self._index.append((self._seq, offset, size, record.is_alarm))

    def _compact(self, drop: set[int]) -> None:
        """Rewrite the live records minus ``drop`` into the next generation's file."""
        kept: list[tuple[int, Record]] = []
        for i, (seq, record) in enumerate(self.peek(len(self._index))):
            if i in drop:
                self._count_drop(record)
            else:
                kept.append((seq, record))
        gen = self._gen + 1
        new_index: deque[tuple[int, int, int, bool]] = deque()
        with self._log_path(gen).open("wb") as fh:
            offset = 0
            for seq, record in kept:
                chunk = frame(record)
                fh.write(chunk)
                new_index.append((seq, offset, len(chunk), record.is_alarm))
                offset += len(chunk)
            self._sync(fh)
        self._write_head(gen, 0)
        self._file.close()
        self._log_path(self._gen).unlink()
        self._gen, self._index = gen, new_index
        self._file = self._log_path(gen).open("a+b")

    def _sync(self, fh: object) -> None:
        if self.fsync == "always":
            fh.flush()  # type: ignore[attr-defined]
            os.fsync(fh.fileno())  # type: ignore[attr-defined]
        else:
            fh.flush()  # type: ignore[attr-defined]

    def _sync_dir(self) -> None:
        if self.fsync == "always":
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
