"""The tables of the service database, all on one `metadata`.

Every durable feature keeps its tables here, so one engine (SQLite file or PostgreSQL) holds
them all and `create_tables` makes them at start. Moderator reports (`reports`) are here too;
the image library's `image_hashes` table shares the engine (its name is left free for it).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Dialect,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.types import TypeDecorator

ID_LENGTH = 128  # group and user ids, as the path and message fields allow


def utc(moment: datetime) -> datetime:
    """Aware UTC time; a naive time is taken to be UTC already."""
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Times stored in UTC and read back aware on every database.

    SQLite keeps no time zone (it stores text), so times are converted to UTC before they are
    written and given the UTC zone when read; comparisons in SQL then compare like with like.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> datetime | None:
        return None if value is None else utc(value)


metadata = MetaData()

# A group's own policy: the resolved document (preset merged with the group's changes).
group_policies = Table(
    "group_policies",
    metadata,
    Column("group_id", String(ID_LENGTH), primary_key=True),
    Column("document", JSON, nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
)

# One row per (group, user) that ever got a strike: the row that recording a strike locks, so
# that concurrent violations of one user are counted one after the other.
strike_holders = Table(
    "strike_holders",
    metadata,
    Column("group_id", String(ID_LENGTH), primary_key=True),
    Column("user_id", String(ID_LENGTH), primary_key=True),
    Column("last_strike_at", UtcDateTime(), nullable=False),
)

# Every strike ever given; expired ones (older than the policy's window) and pardoned ones
# stay for the record but no longer count.
strikes = Table(
    "strikes",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", String(ID_LENGTH), nullable=False),
    Column("user_id", String(ID_LENGTH), nullable=False),
    Column("rule", String(64), nullable=False),
    Column("action", String(16), nullable=False),
    Column("message_id", String(ID_LENGTH), nullable=True),
    Column("at", UtcDateTime(), nullable=False),
    Column("pardoned_at", UtcDateTime(), nullable=True),
    Index("ix_strikes_holder_at", "group_id", "user_id", "at"),
)

# Recent message fingerprints per group (the duplicate rule): the first time a normalised
# text was seen in the group within the rule's window.
message_fingerprints = Table(
    "message_fingerprints",
    metadata,
    Column("group_id", String(ID_LENGTH), primary_key=True),
    Column("fingerprint", String(64), primary_key=True),
    Column("user_id", String(ID_LENGTH), nullable=True),
    Column("first_seen_at", UtcDateTime(), nullable=False),
    Index("ix_message_fingerprints_group_seen", "group_id", "first_seen_at"),
)

# Moderator reports (POST /v1/reports): labelled examples for retraining, oldest first by id.
# `dedup_key` (see serving.store.reports) is unique: the same normalised text or picture with
# the same labels from the same group is stored once.
reports = Table(
    "reports",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("text", Text, nullable=True),
    Column("image_sha256", String(64), nullable=True),
    Column("image", LargeBinary, nullable=True),
    Column("labels", JSON, nullable=False),
    Column("group_id", String(ID_LENGTH), nullable=True),
    Column("reporter", String(ID_LENGTH), nullable=True),
    Column("note", Text, nullable=True),
    Column("message_id", String(ID_LENGTH), nullable=True),
    Column("dedup_key", String(64), nullable=False, unique=True),
)
