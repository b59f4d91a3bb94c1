"""Perceptual hashes and the picture-flood counter.

`image_hash` is imagehash's 64-bit pHash (DCT of a 32x32 greyscale copy). Two pictures are the
same picture when their hashes differ in at most NEAR_DUPLICATE_DISTANCE = 8 bits. Measured on
the fixtures: re-encoding at JPEG quality 40 or halving the size moves a hash by 0 to 2 bits, a
3 % crop or a 10 % brightness change by 2 to 10, while two different fixtures differ by 20 to
42 bits.

The flood counter records every picture a group sees (group, user, hash, time) and answers how
many near-duplicates of it the group and the user posted before it within the window. It sits
behind the small `FloodCounter` interface, with an in-memory implementation (one process) and
an SQLAlchemy one (table `image_hashes`; SQLite file by default, PostgreSQL by URL), so the
policy engine can share the database it keeps strikes in. Rows older than the window are
deleted as the group posts again. `count` answers the same question without remembering the
picture (a dry run). Hamming distances are computed in Python over the group's rows in the
window (SQLite has no bit count), which stays cheap for the few hundred pictures a group posts
in ten minutes. Count-then-insert runs one writer per group at a time (SQLite:
BEGIN IMMEDIATE; PostgreSQL: a transaction advisory lock on the group), so simultaneous posts
of the same picture count each other exactly once. `SqlFloodCounter(engine=...)` shares an
engine the caller already has (serving passes its store's, so one database holds strikes and
pictures).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import imagehash
from PIL import Image
from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    delete,
    event,
    insert,
    select,
    text,
)
from sqlalchemy.engine import Connection, Engine

from models.paths import REPO_ROOT

NEAR_DUPLICATE_DISTANCE = 8
DEFAULT_WINDOW = timedelta(minutes=10)
DEFAULT_DB_PATH = REPO_ROOT / "var" / "qunguard.db"
MAX_PER_GROUP = 5000  # in-memory: the newest pictures kept per group


def image_hash(img: Image.Image) -> int:
    """The 64-bit perceptual hash (pHash) of a picture, as an unsigned integer."""
    return int(str(imagehash.phash(img)), 16)


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def is_near_duplicate(a: int, b: int) -> bool:
    return hamming(a, b) <= NEAR_DUPLICATE_DISTANCE


@dataclass(frozen=True, slots=True)
class FloodCount:
    """Near-duplicates of a picture posted BEFORE it within the window."""

    group: int  # by anyone in the group: the contract's `duplicate_count`
    user: int  # by the same user


class FloodCounter(Protocol):
    window: timedelta

    def record(
        self, group_id: str, user_id: str | None, image_hash: int, now: datetime
    ) -> FloodCount:
        """Count earlier near-duplicates in the window, then remember this picture."""
        ...

    def count(
        self, group_id: str, user_id: str | None, image_hash: int, now: datetime
    ) -> FloodCount:
        """Count earlier near-duplicates in the window without remembering this picture."""
        ...


def _tally(
    seen: Iterable[tuple[str | None, int]], user_id: str | None, image_hash: int
) -> FloodCount:
    """Near-duplicates of `image_hash` among (user, hash) rows: in all, and by `user_id`."""
    group = user = 0
    for seen_user, seen_hash in seen:
        if is_near_duplicate(seen_hash, image_hash):
            group += 1
            user += user_id is not None and seen_user == user_id
    return FloodCount(group, user)


def _utc(moment: datetime) -> datetime:
    """Aware UTC time (a naive time is taken to be UTC already)."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class MemoryFloodCounter:
    """Flood counter of one process; thread-safe."""

    def __init__(self, window: timedelta = DEFAULT_WINDOW, max_per_group: int = MAX_PER_GROUP):
        self.window = window
        self._max_per_group = max_per_group
        self._groups: dict[str, deque[tuple[datetime, str | None, int]]] = {}
        self._lock = threading.Lock()
        self._records = 0

    def record(
        self, group_id: str, user_id: str | None, image_hash: int, now: datetime
    ) -> FloodCount:
        now = _utc(now)
        since = now - self.window
        with self._lock:
            seen = self._groups.setdefault(group_id, deque(maxlen=self._max_per_group))
            while seen and seen[0][0] < since:
                seen.popleft()
            found = _tally(((u, h) for at, u, h in seen if at <= now), user_id, image_hash)
            seen.append((now, user_id, image_hash))
            self._records += 1
            if self._records % 1024 == 0:
                self._forget_quiet_groups(since)
        return found

    def count(
        self, group_id: str, user_id: str | None, image_hash: int, now: datetime
    ) -> FloodCount:
        now = _utc(now)
        since = now - self.window
        with self._lock:
            seen = list(self._groups.get(group_id, ()))
        return _tally(((u, h) for at, u, h in seen if since <= at <= now), user_id, image_hash)

    def group_count(self) -> int:
        """Groups currently remembered (quiet ones are forgotten every 1024 records)."""
        with self._lock:
            return len(self._groups)

    def _forget_quiet_groups(self, since: datetime) -> None:
        quiet = [g for g, seen in self._groups.items() if not seen or seen[-1][0] < since]
        for group_id in quiet:
            del self._groups[group_id]


_metadata = MetaData()
image_hashes = Table(
    "image_hashes",
    _metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", String(128), nullable=False),
    Column("user_id", String(128), nullable=True),
    Column("hash", BigInteger, nullable=False),  # the 64-bit hash as a signed integer
    Column("seen_at", DateTime(timezone=True), nullable=False),
    Index("ix_image_hashes_group_seen", "group_id", "seen_at"),
)


def _signed(value: int) -> int:
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def sqlite_url(path: Path = DEFAULT_DB_PATH) -> str:
    return f"sqlite:///{path}"


class SqlFloodCounter:
    """Flood counter in a database (`image_hashes` table, created when missing).

    `engine`: an engine to share (it must begin SQLite transactions with BEGIN IMMEDIATE, as
    `_make_engine` does); otherwise one is made for `url` (default: `var/qunguard.db`).
    """

    def __init__(
        self,
        url: str | None = None,
        window: timedelta = DEFAULT_WINDOW,
        *,
        engine: Engine | None = None,
    ):
        self.window = window
        if engine is None:
            if url is None:
                DEFAULT_DB_PATH.parent.mkdir(parents=True, exist_ok=True)
                url = sqlite_url()
            engine = _make_engine(url)
        self.engine = engine
        _metadata.create_all(self.engine)

    def record(
        self, group_id: str, user_id: str | None, image_hash: int, now: datetime
    ) -> FloodCount:
        now = _utc(now)
        since = now - self.window
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":  # one writer per group, as BEGIN IMMEDIATE
                conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:g))"), {"g": group_id})
            conn.execute(
                delete(image_hashes).where(
                    image_hashes.c.group_id == group_id, image_hashes.c.seen_at < since
                )
            )
            found = _tally(_window_rows(conn, group_id, since, now), user_id, image_hash)
            conn.execute(
                insert(image_hashes).values(
                    group_id=group_id, user_id=user_id, hash=_signed(image_hash), seen_at=now
                )
            )
        return found

    def count(
        self, group_id: str, user_id: str | None, image_hash: int, now: datetime
    ) -> FloodCount:
        now = _utc(now)
        with self.engine.begin() as conn:
            rows = _window_rows(conn, group_id, now - self.window, now)
        return _tally(rows, user_id, image_hash)


def _window_rows(
    conn: Connection, group_id: str, since: datetime, now: datetime
) -> list[tuple[str | None, int]]:
    rows = conn.execute(
        select(image_hashes.c.user_id, image_hashes.c.hash).where(
            image_hashes.c.group_id == group_id,
            image_hashes.c.seen_at >= since,
            image_hashes.c.seen_at <= now,
        )
    ).all()
    return [(seen_user, _unsigned(seen_hash)) for seen_user, seen_hash in rows]


def _make_engine(url: str) -> Engine:
    if not url.startswith("sqlite"):
        return create_engine(url, pool_pre_ping=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    # SQLAlchemy's recipe for SQLite transactions: take pysqlite's implicit BEGIN away and start
    # each transaction with BEGIN IMMEDIATE, so count-then-insert runs one writer at a time.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")  # readers do not block the writer
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn) -> None:  # type: ignore[no-untyped-def]
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine
