"""Moderator reports as stored: labelled examples for retraining (`POST /v1/reports`).

A report is committed before the service answers, so an accepted report is never lost. The
same report sent twice is stored once: its `dedup_key` hashes the group, the normalised text
(`serving.store.fingerprints.fingerprint`, i.e. `models.text.normalize`) and/or the picture's
SHA-256, and the sorted labels, and is unique. Adding is one INSERT ... ON CONFLICT DO NOTHING
RETURNING; when it inserts nothing the existing report's id is answered, so of two identical
reports arriving at once exactly one is new. The same text with other labels is a new report
(a correction: exports are oldest first and `training.reports` lets the later line win).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from models.labels import TEXT_LABELS
from serving.store.db import Store, upsert
from serving.store.fingerprints import fingerprint
from serving.store.tables import reports as table
from serving.store.tables import utc


@dataclass(frozen=True, slots=True)
class Added:
    id: int
    duplicate: bool


def ordered_labels(labels: Sequence[str]) -> list[str]:
    """The labels once each, in TEXT_LABELS order."""
    return [label for label in TEXT_LABELS if label in set(labels)]


def dedup_key(
    text: str | None, image_sha256: str | None, labels: Sequence[str], group_id: str | None
) -> str:
    parts = [
        group_id or "",
        fingerprint(text) if text is not None else "",
        image_sha256 or "",
        ",".join(ordered_labels(labels)),
    ]
    return hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()


# The columns a page of reports lists (the picture's bytes stay in the database).
LISTED = (
    table.c.id,
    table.c.created_at,
    table.c.text,
    table.c.labels,
    table.c.group_id,
    table.c.reporter,
    table.c.note,
    table.c.message_id,
    table.c.image_sha256,
)


class ReportTable:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        *,
        text: str | None,
        image: bytes | None,
        labels: Sequence[str],
        group_id: str | None = None,
        reporter: str | None = None,
        note: str | None = None,
        message_id: str | None = None,
        at: datetime,
    ) -> Added:
        """Store a report (committed when this returns), or find the same one stored before."""
        image_sha256 = hashlib.sha256(image).hexdigest() if image is not None else None
        labels = ordered_labels(labels)
        key = dedup_key(text, image_sha256, labels, group_id)
        with self.store.begin() as connection:
            inserted = connection.execute(
                upsert(connection, table)
                .values(
                    created_at=utc(at),
                    text=text,
                    image_sha256=image_sha256,
                    image=image,
                    labels=labels,
                    group_id=group_id,
                    reporter=reporter,
                    note=note,
                    message_id=message_id,
                    dedup_key=key,
                )
                .on_conflict_do_nothing(index_elements=[table.c.dedup_key])
                .returning(table.c.id)
            ).first()
            if inserted is not None:
                return Added(int(inserted.id), duplicate=False)
            existing = connection.execute(
                select(table.c.id).where(table.c.dedup_key == key)
            ).scalar_one()
        return Added(int(existing), duplicate=True)

    def page(self, after_id: int = 0, limit: int = 100) -> tuple[list[dict[str, Any]], bool]:
        """Up to `limit` reports with id > after_id in id order, and whether more follow."""
        with self.store.begin() as connection:
            rows = _page(connection, after_id, limit + 1)
        return rows[:limit], len(rows) > limit


def _page(connection: Connection, after_id: int, limit: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(*LISTED).where(table.c.id > after_id).order_by(table.c.id).limit(limit)
    ).all()
    return [dict(row._mapping) for row in rows]


def read_page(connection: Connection, after_id: int, limit: int) -> list[dict[str, Any]]:
    """Reports with id > after_id in id order (for `training.reports export`)."""
    return _page(connection, after_id, limit)
