"""Group policy documents as stored: plain JSON, validated by `serving.policies` before."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select

from serving.store.db import Store, upsert
from serving.store.tables import group_policies as table


@dataclass(frozen=True, slots=True)
class StoredPolicy:
    document: dict[str, Any]
    updated_at: datetime


class PolicyTable:
    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, group_id: str) -> StoredPolicy | None:
        with self.store.begin() as connection:
            row = connection.execute(
                select(table.c.document, table.c.updated_at).where(table.c.group_id == group_id)
            ).first()
        return None if row is None else StoredPolicy(row.document, row.updated_at)

    def put(self, group_id: str, document: dict[str, Any], at: datetime) -> None:
        with self.store.begin() as connection:
            statement = upsert(connection, table).values(
                group_id=group_id, document=document, updated_at=at
            )
            connection.execute(
                statement.on_conflict_do_update(
                    index_elements=[table.c.group_id],
                    set_={"document": document, "updated_at": statement.excluded.updated_at},
                )
            )

    def delete(self, group_id: str) -> bool:
        """Remove the group's own policy (the group gets the default again)."""
        with self.store.begin() as connection:
            result = connection.execute(delete(table).where(table.c.group_id == group_id))
        return result.rowcount > 0
