"""Recent message fingerprints per group, for the duplicate rule ("the same ad only once").

A fingerprint is a hash of the normalised text (`models.text.normalize`), so the same ad with
other spacing, full-width letters, traditional characters or evasion spellings is the same.
Checking and recording is one atomic INSERT ... ON CONFLICT DO NOTHING on (group,
fingerprint): of two identical messages arriving at once exactly one inserts the row and is
the first; the other finds it and is the duplicate. Rows older than the window are deleted
first, so a text may be posted again once its window has passed.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from models.text.normalize import normalize
from serving.store.db import Store, upsert
from serving.store.tables import message_fingerprints as table
from serving.store.tables import utc


def fingerprint(text: str) -> str:
    """The hash of the text's normalised form (spaces and punctuation between words kept)."""
    normalized = normalize(text).text.strip()
    return hashlib.sha256(normalized.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class FingerprintStore:
    def __init__(self, store: Store) -> None:
        self.store = store

    def seen(
        self,
        group_id: str,
        digest: str,
        *,
        at: datetime,
        window: timedelta,
        user_id: str | None = None,
        record: bool = True,
    ) -> bool:
        """True when the group saw this fingerprint within `window` before `at`.

        With `record` a first sighting is remembered (atomically with the check).
        """
        since = utc(at) - window
        with self.store.begin() as connection:
            if not record:
                found = connection.execute(
                    select(table.c.group_id).where(
                        table.c.group_id == group_id,
                        table.c.fingerprint == digest,
                        table.c.first_seen_at > since,
                    )
                ).first()
                return found is not None
            connection.execute(
                delete(table).where(table.c.group_id == group_id, table.c.first_seen_at <= since)
            )
            inserted = connection.execute(
                upsert(connection, table)
                .values(group_id=group_id, fingerprint=digest, user_id=user_id, first_seen_at=at)
                .on_conflict_do_nothing()
                .returning(table.c.fingerprint)
            ).first()
        return inserted is None
