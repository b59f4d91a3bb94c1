"""The service database: one engine (SQLite file by default, PostgreSQL by URL), its tables.

Concurrency, per database:
- SQLite allows one writer at a time. Every transaction starts with BEGIN IMMEDIATE, which
  takes the write lock at once (pysqlite's own deferred BEGIN would take it only at the first
  write, after the reads a check-then-write depends on), so read-count-then-insert runs
  serialized across threads and processes. WAL lets readers go on meanwhile; a writer waits
  up to `SQLITE_BUSY_TIMEOUT_S` for the lock.
- PostgreSQL runs transactions side by side (READ COMMITTED). Code that must not race takes a
  row lock (SELECT ... FOR UPDATE on a per-(group, user) row, see `serving.store.strikes`) or
  uses one atomic statement (INSERT ... ON CONFLICT ... RETURNING, see
  `serving.store.fingerprints`). SQLite ignores FOR UPDATE; BEGIN IMMEDIATE covers it there.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import InterfaceError, OperationalError

from serving.errors import ApiError
from serving.store.tables import metadata

log = logging.getLogger("qunguard.store")

SQLITE_FILE = "qunguard.db"
SQLITE_BUSY_TIMEOUT_S = 30
# Any constant: the advisory lock that lets one process at a time create the tables.
_SCHEMA_LOCK_KEY = 0x71756E67


def database_url(data_dir: Path, url: str | None = None) -> str:
    """`url` when given, else the SQLite file in `data_dir` (created when missing)."""
    if url:
        return url
    data_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{data_dir / SQLITE_FILE}"


def make_engine(url: str) -> Engine:
    """An engine with the transaction behaviour described in the module docstring.

    `postgresql://` URLs are given the psycopg 3 driver (SQLAlchemy's default is psycopg2).
    """
    parsed = make_url(url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.get_backend_name() != "sqlite":
        return create_engine(parsed, pool_pre_ping=True)
    engine = create_engine(
        parsed, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S, "check_same_thread": False}
    )

    # SQLAlchemy's documented recipe: take pysqlite's implicit BEGIN away, begin ourselves.
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def create_tables(engine: Engine) -> None:
    """Create the missing tables; on PostgreSQL one process at a time (an advisory lock), so
    two services starting together on an empty database do not both try to create them."""
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": _SCHEMA_LOCK_KEY})
        metadata.create_all(connection)


def upsert(connection: Connection, table: Table) -> Any:
    """INSERT with ON CONFLICT support (`on_conflict_do_nothing/_update`) for this database."""
    if connection.dialect.name == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


class Store:
    """The engine shared by every durable feature, and transactions on it."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def create_tables(self) -> None:
        create_tables(self.engine)

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A connection in a transaction: committed on success, rolled back on an error."""
        with self.engine.begin() as connection:
            yield connection

    def close(self) -> None:
        self.engine.dispose()


@contextmanager
def unavailable_as_503(retry_after_s: int = 1) -> Iterator[None]:
    """A database that cannot be reached (or a lock not had in time) answers 503 with
    Retry-After, like an overloaded service, instead of an internal error."""
    try:
        yield
    except (OperationalError, InterfaceError) as exc:
        log.error("database unavailable", extra={"error": str(exc.orig or exc)})
        raise ApiError(
            503,
            "store_unavailable",
            "the database is unavailable; try again shortly",
            {"Retry-After": str(retry_after_s)},
        ) from exc


def open_store(data_dir: Path, url: str | None = None) -> Store:
    """The store for these settings, its tables created."""
    store = Store(database_url(data_dir, url))
    store.create_tables()
    return store
