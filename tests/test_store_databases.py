"""The store on real SQLite and real PostgreSQL: strikes, pardons, expiry, fingerprints, policies,
and many simultaneous violations of one user from threads and from processes.

PostgreSQL is the one at QUNGUARD_TEST_POSTGRES_URL (default: 127.0.0.1:5432, database `test`,
trust auth); each test run works in a schema of its own, dropped at the end. Without an
answering server the PostgreSQL cases are skipped, saying why. The helpers here
(`database_urls`, `postgres_schema`) are shared by the other policy and store tests.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from serving.store import Store, open_store
from serving.store.fingerprints import FingerprintStore, fingerprint
from serving.store.policies import PolicyTable
from serving.store.strikes import StrikeLedger

POSTGRES_URL = (
    os.environ.get("QUNGUARD_TEST_POSTGRES_URL")
    or "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DATABASES = ["sqlite", "postgresql"]
T0 = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
WINDOW = timedelta(days=30)


def postgres_unavailable() -> str | None:
    """Why PostgreSQL cannot be used for tests, or None when it answers."""
    try:
        engine = create_engine(POSTGRES_URL, connect_args={"connect_timeout": 3})
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except Exception as exc:  # any failure to connect means: skip, with the reason
        return f"no PostgreSQL answers at {POSTGRES_URL}: {type(exc).__name__}: {exc}"
    return None


@contextmanager
def postgres_schema() -> Iterator[str]:
    """A URL whose connections work in a fresh schema of their own; the schema is dropped
    afterwards. Skips the test when no PostgreSQL answers."""
    reason = postgres_unavailable()
    if reason:
        pytest.skip(reason)
    schema = f"qg_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(POSTGRES_URL)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    url = make_url(POSTGRES_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@contextmanager
def database_url(kind: str, tmp_path: Path) -> Iterator[str]:
    """A URL of an empty database of this kind (sqlite: a file under tmp_path)."""
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path / 'qunguard.db'}"
    else:
        with postgres_schema() as url:
            yield url


@pytest.fixture(params=DATABASES)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    with database_url(request.param, tmp_path) as url:
        store = open_store(tmp_path, url)
        yield store
        store.close()


def escalate_at_2(number: int) -> str:
    return "remove" if number >= 2 else "warn"


def test_tables_are_created_once_and_again_without_harm(store: Store) -> None:
    store.create_tables()  # a restart: the tables exist already
    names = set(inspect(store.engine).get_table_names())
    assert {"group_policies", "strike_holders", "strikes", "message_fingerprints"} <= names


def test_strikes_count_up_then_expire(store: Store) -> None:
    ledger = StrikeLedger(store)

    def record(at: datetime, rule: str = "ad") -> tuple[int, str]:
        done = ledger.record(
            "g", "u", rule=rule, at=at, window=WINDOW, action_for=escalate_at_2, message_id="m"
        )
        return done.number, done.action

    assert record(T0) == (1, "warn")
    assert record(T0 + timedelta(days=1)) == (2, "remove")
    # 30.5 days after the first strike only the second one still counts.
    assert record(T0 + timedelta(days=30, hours=12)) == (2, "remove")
    # Another user and another group have strikes of their own.
    other = ledger.record("g", "v", rule="ad", at=T0, window=WINDOW, action_for=escalate_at_2)
    assert other.number == 1
    assert ledger.record("h", "u", rule="ad", at=T0, window=WINDOW, action_for=str).number == 1
    later = T0 + timedelta(days=30, hours=13)
    active = ledger.active("g", "u", at=later, window=WINDOW)
    assert [s.at for s in active] == [T0 + timedelta(days=1), T0 + timedelta(days=30, hours=12)]
    assert [s.action for s in active] == ["remove", "remove"]
    assert active[0].at.tzinfo is not None


def test_strikes_per_rule_count_only_that_rule(store: Store) -> None:
    ledger = StrikeLedger(store)
    args = {"at": T0, "window": WINDOW, "action_for": escalate_at_2}
    assert ledger.record("g", "u", rule="insult", **args).number == 1
    assert ledger.record("g", "u", rule="ad", only_rule=True, **args).number == 1
    assert ledger.record("g", "u", rule="ad", only_rule=False, **args).number == 3
    assert ledger.count("g", "u", at=T0, window=WINDOW, rule="ad") == 2
    assert ledger.count("g", "u", at=T0, window=WINDOW) == 3


def test_pardon_clears_the_count_and_keeps_later_strikes_counting(store: Store) -> None:
    ledger = StrikeLedger(store)
    for day in range(3):
        ledger.record(
            "g", "u", rule="ad", at=T0 + timedelta(days=day), window=WINDOW, action_for=str
        )
    assert ledger.pardon("g", "u", at=T0 + timedelta(days=3), window=WINDOW) == 3
    assert ledger.active("g", "u", at=T0 + timedelta(days=3), window=WINDOW) == []
    assert ledger.pardon("g", "u", at=T0 + timedelta(days=3), window=WINDOW) == 0
    after = ledger.record(
        "g", "u", rule="ad", at=T0 + timedelta(days=4), window=WINDOW, action_for=escalate_at_2
    )
    assert (after.number, after.action) == (1, "warn")


def test_simultaneous_violations_of_one_user_count_one_by_one(store: Store) -> None:
    """40 threads record a strike for the same user at the same moment: one warning, then
    removals, each strike number exactly once (no lost or double-counted strike)."""
    ledger = StrikeLedger(store)
    n = 40
    start = threading.Barrier(n)

    def violate(i: int) -> tuple[int, str]:
        start.wait()
        done = ledger.record(
            "g", "u", rule="ad", at=T0, window=WINDOW, action_for=escalate_at_2, message_id=str(i)
        )
        return done.number, done.action

    with ThreadPoolExecutor(n) as pool:
        results = list(pool.map(violate, range(n)))
    assert sorted(number for number, _ in results) == list(range(1, n + 1))
    assert Counter(action for _, action in results) == {"warn": 1, "remove": n - 1}
    assert len(ledger.active("g", "u", at=T0, window=WINDOW)) == n


def _violate_from_process(url: str, worker: int, count: int, queue: multiprocessing.Queue) -> None:
    store = Store(url)  # a process of its own: its own engine and connections
    ledger = StrikeLedger(store)
    for i in range(count):
        done = ledger.record(
            "g",
            "u",
            rule="ad",
            at=T0,
            window=WINDOW,
            action_for=escalate_at_2,
            message_id=f"{worker}-{i}",
        )
        queue.put((done.number, done.action))
    store.close()


@pytest.mark.parametrize("kind", DATABASES)
def test_simultaneous_violations_from_several_processes(kind: str, tmp_path: Path) -> None:
    with database_url(kind, tmp_path) as url:
        open_store(tmp_path, url).close()
        context = multiprocessing.get_context("spawn")
        queue = context.Queue()
        workers, each = 4, 10
        processes = [
            context.Process(target=_violate_from_process, args=(url, w, each, queue))
            for w in range(workers)
        ]
        for process in processes:
            process.start()
        results = [queue.get(timeout=120) for _ in range(workers * each)]
        for process in processes:
            process.join(timeout=60)
            assert process.exitcode == 0
    assert sorted(number for number, _ in results) == list(range(1, workers * each + 1))
    assert Counter(action for _, action in results)["warn"] == 1


def test_fingerprints_find_the_same_text_once_per_window(store: Store) -> None:
    prints = FingerprintStore(store)
    ad = fingerprint("本店新到一批缝纫机配件，欢迎选购，电话 13800138000")
    # The same ad in full-width letters, traditional characters, other spacing: same print.
    assert fingerprint("本店新到一批缝纫机配件， 欢迎选购，电话 １３８００１３８０００") == ad
    assert fingerprint("本店新到一批縫紉機配件，歡迎選購，電話 13800138000") == ad
    assert fingerprint("本店新到一批缝纫机配件，欢迎选购，电话 13900139000") != ad
    seen = prints.seen
    assert seen("g", ad, at=T0, window=WINDOW, user_id="u1") is False
    assert seen("g", ad, at=T0 + timedelta(hours=1), window=WINDOW, user_id="u2") is True
    assert seen("h", ad, at=T0, window=WINDOW) is False  # another group
    # A check without recording finds it, but does not remember a new one.
    assert seen("g", ad, at=T0 + timedelta(days=1), window=WINDOW, record=False) is True
    other = fingerprint("另一条广告")
    assert seen("g", other, at=T0, window=WINDOW, record=False) is False
    assert seen("g", other, at=T0, window=WINDOW) is False
    # After the window the ad may be posted again (once).
    later = T0 + WINDOW + timedelta(minutes=1)
    assert seen("g", ad, at=later, window=WINDOW) is False
    assert seen("g", ad, at=later + timedelta(minutes=1), window=WINDOW) is True


def test_simultaneous_identical_messages_have_exactly_one_first(store: Store) -> None:
    prints = FingerprintStore(store)
    digest = fingerprint("同样的广告只能发一次")
    n = 30
    start = threading.Barrier(n)

    def post(i: int) -> bool:
        start.wait()
        return prints.seen("g", digest, at=T0, window=WINDOW, user_id=f"u{i}")

    with ThreadPoolExecutor(n) as pool:
        outcomes = list(pool.map(post, range(n)))
    assert outcomes.count(False) == 1 and outcomes.count(True) == n - 1


def test_policy_documents_are_stored_replaced_and_deleted(store: Store) -> None:
    table = PolicyTable(store)
    assert table.get("g") is None
    table.put("g", {"name": "一", "labels": {"ad": {"action": "warn"}}}, T0)
    table.put("g", {"name": "二"}, T0 + timedelta(hours=1))
    stored = table.get("g")
    assert stored is not None
    assert stored.document == {"name": "二"}
    assert stored.updated_at == T0 + timedelta(hours=1)
    assert table.delete("g") is True
    assert table.delete("g") is False
    assert table.get("g") is None


def test_postgres_tables_live_in_the_test_schema() -> None:
    """The isolation the other tests rely on: a run's tables are in its own schema only."""
    with postgres_schema() as url:
        store = open_store(Path("."), url)
        with store.begin() as connection:
            schema = connection.execute(text("SELECT current_schema()")).scalar_one()
            tables = connection.execute(
                text(
                    "SELECT count(*) FROM pg_tables WHERE schemaname = :s AND tablename = 'strikes'"
                ),
                {"s": schema},
            ).scalar_one()
        store.close()
    assert schema.startswith("qg_test_") and tables == 1
