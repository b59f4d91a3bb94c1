"""Perceptual hashes find the same picture again; both flood counters count it the same way."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from PIL import Image
from sqlalchemy import create_engine, inspect, select

from models.image.decode import decode_image
from models.image.phash import (
    NEAR_DUPLICATE_DISTANCE,
    FloodCount,
    FloodCounter,
    MemoryFloodCounter,
    SqlFloodCounter,
    hamming,
    image_hash,
    image_hashes,
    is_near_duplicate,
    sqlite_url,
)
from tests.test_store_databases import postgres_schema

FIXTURES = Path(__file__).parent / "fixtures" / "images"
DISTINCT = [
    "poster_qr_ad.jpg",
    "poster_kanjia_qr.jpg",
    "poster_text_ad.jpg",
    "photo_landscape.jpg",
    "photo_skin.jpg",
    "photo_shapes.webp",
    "screenshot_chat.png",
    "qr_plain.png",
]
T0 = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


def picture(name: str) -> Image.Image:
    return decode_image((FIXTURES / name).read_bytes()).frames[0]


def reencoded(img: Image.Image, quality: int, scale: float = 1.0) -> Image.Image:
    if scale != 1.0:
        img = img.resize((int(img.width * scale), int(img.height * scale)))
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue())).convert("RGB")


def test_hash_is_a_64_bit_integer_and_hamming_counts_bits() -> None:
    value = image_hash(picture("photo_landscape.jpg"))
    assert 0 <= value < 1 << 64
    assert hamming(0b1011, 0b0001) == 2 and hamming(value, value) == 0


@pytest.mark.parametrize("name", DISTINCT)
def test_reencoded_and_resized_copies_are_near_duplicates(name: str) -> None:
    img = picture(name)
    original = image_hash(img)
    for copy in (reencoded(img, 40), reencoded(img, 85, scale=0.5)):
        assert is_near_duplicate(original, image_hash(copy))


def test_different_pictures_are_not_near_duplicates() -> None:
    hashes = [image_hash(picture(name)) for name in DISTINCT]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            assert hamming(a, b) > 2 * NEAR_DUPLICATE_DISTANCE


@pytest.fixture(params=["memory", "sqlite", "postgresql"])
def counter(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FloodCounter]:
    """PostgreSQL: the local server (QUNGUARD_TEST_POSTGRES_URL), in a schema of its own that
    is dropped afterwards; skipped with the reason when no server answers."""
    window = timedelta(minutes=10)
    if request.param == "memory":
        yield MemoryFloodCounter(window=window)
        return
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = sqlite_url(tmp_path / "floods.db")
        else:
            url = stack.enter_context(postgres_schema())
        sql = SqlFloodCounter(url, window=window)
        yield sql
        sql.engine.dispose()


def test_twenty_posts_of_one_picture(counter: FloodCounter) -> None:
    h = image_hash(picture("poster_qr_ad.jpg"))
    counts = [counter.record("g1", "u1", h, T0 + timedelta(seconds=i)) for i in range(20)]
    assert [c.group for c in counts] == list(range(20))
    assert counts[-1].user == 19


def test_near_duplicates_count_and_other_pictures_do_not(counter: FloodCounter) -> None:
    img = picture("poster_qr_ad.jpg")
    counter.record("g1", "u1", image_hash(img), T0)
    assert counter.record("g1", "u2", image_hash(reencoded(img, 40)), T0).group == 1
    other = image_hash(picture("photo_landscape.jpg"))
    assert counter.record("g1", "u1", other, T0).group == 0


def test_counts_are_per_group_and_per_user(counter: FloodCounter) -> None:
    h = image_hash(picture("qr_plain.png"))
    counter.record("g1", "alice", h, T0)
    counter.record("g1", "bob", h, T0)
    assert counter.record("g2", "alice", h, T0).group == 0  # another group
    third = counter.record("g1", "alice", h, T0 + timedelta(seconds=1))
    assert (third.group, third.user) == (2, 1)
    anonymous = counter.record("g1", None, h, T0 + timedelta(seconds=2))
    assert (anonymous.group, anonymous.user) == (3, 0)


def test_pictures_older_than_the_window_do_not_count(counter: FloodCounter) -> None:
    h = image_hash(picture("photo_skin.jpg"))
    counter.record("g1", "u1", h, T0)
    counter.record("g1", "u1", h, T0 + timedelta(minutes=5))
    assert counter.record("g1", "u1", h, T0 + timedelta(minutes=12)).group == 1
    assert counter.record("g1", "u1", h, T0 + timedelta(minutes=30)).group == 0


def test_naive_and_other_zone_times_are_utc(counter: FloodCounter) -> None:
    h = image_hash(picture("photo_shapes.webp"))
    counter.record("g1", "u1", h, T0.replace(tzinfo=None))
    beijing = T0.astimezone(ZoneInfo("Asia/Shanghai"))
    assert counter.record("g1", "u1", h, beijing + timedelta(minutes=1)).group == 1


def test_count_answers_like_record_but_remembers_nothing(counter: FloodCounter) -> None:
    h = image_hash(picture("poster_qr_ad.jpg"))
    assert counter.count("g1", "u1", h, T0) == FloodCount(0, 0)
    counter.record("g1", "u1", h, T0)
    later = T0 + timedelta(seconds=1)
    assert [counter.count("g1", "u1", h, later) for _ in range(3)] == [FloodCount(1, 1)] * 3
    assert counter.count("g1", "u2", h, later) == FloodCount(1, 0)
    assert counter.count("g1", "u1", h, T0 + timedelta(minutes=11)) == FloodCount(0, 0)
    assert counter.record("g1", "u1", h, later) == FloodCount(1, 1)


def test_sql_counter_shares_a_given_engine(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path / "given.db"))
    counter = SqlFloodCounter(engine=engine)
    assert counter.engine is engine
    counter.record("g1", "u1", 12345, T0)
    assert counter.count("g1", None, 12345, T0 + timedelta(seconds=1)).group == 1
    engine.dispose()


def test_concurrent_posts_are_all_counted(counter: FloodCounter) -> None:
    h = image_hash(picture("poster_text_ad.jpg"))
    results: list[int] = []
    lock = threading.Lock()

    def post(i: int) -> None:
        count = counter.record("busy", f"u{i}", h, T0)
        with lock:
            results.append(count.group)

    threads = [threading.Thread(target=post, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == list(range(16))  # each post saw every earlier one, once


def test_sql_table_is_shared_and_durable(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path / "shared.db")
    h = image_hash(picture("poster_kanjia_qr.jpg"))
    first = SqlFloodCounter(url)
    first.record("g1", "u1", h, T0)
    first.engine.dispose()
    second = SqlFloodCounter(url)  # a restart, or another process on the same database
    assert second.record("g1", "u1", h, T0 + timedelta(seconds=5)).group == 1
    columns = {c["name"] for c in inspect(second.engine).get_columns("image_hashes")}
    assert {"group_id", "user_id", "hash", "seen_at"} <= columns
    engine = create_engine(url)
    with engine.connect() as conn:
        stored = conn.execute(select(image_hashes.c.hash)).scalars().all()
    engine.dispose()
    second.engine.dispose()
    assert stored and all(-(1 << 63) <= v < 1 << 63 for v in stored)  # fits BIGINT


def test_sql_rows_outside_the_window_are_deleted(tmp_path: Path) -> None:
    counter = SqlFloodCounter(sqlite_url(tmp_path / "prune.db"), window=timedelta(minutes=1))
    h = image_hash(picture("photo_landscape.jpg"))
    for i in range(5):
        counter.record("g1", "u1", h, T0 + timedelta(seconds=i))
    counter.record("g1", "u1", h, T0 + timedelta(hours=1))
    with counter.engine.connect() as conn:
        assert len(conn.execute(select(image_hashes.c.id)).all()) == 1
    counter.engine.dispose()


def test_memory_counter_forgets_quiet_groups() -> None:
    counter = MemoryFloodCounter(window=timedelta(minutes=1))
    for i in range(1024):
        counter.record(f"g{i}", "u", i, T0 if i < 1000 else T0 + timedelta(hours=1))
    assert counter.group_count() == 24  # the 1000 quiet groups are gone
