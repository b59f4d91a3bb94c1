"""The strike ledger: warnings and removals that count, per group and user.

Recording a strike reads how many strikes the user already has in the window and inserts the
next one; two violations of one user arriving at once must give strikes 1 and 2, never 1 and
1. The read and the insert therefore run in one transaction that first locks the user's row in
`strike_holders`: on PostgreSQL with SELECT ... FOR UPDATE (the second transaction waits at
the lock until the first commits, then counts its strike; READ COMMITTED takes a fresh
snapshot per statement, so that count sees it), on SQLite by BEGIN IMMEDIATE (one writer at a
time; see `serving.store.db`). A row lock rather than an atomic counter, because what counts
changes with time (expiry) and pardons, so the count is taken from the strikes themselves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, Connection, func, insert, select, update

from serving.store.db import Store, upsert
from serving.store.tables import strike_holders, strikes, utc


@dataclass(frozen=True, slots=True)
class Strike:
    id: int
    rule: str
    action: str
    message_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Recorded:
    """The strike just recorded: its number among the user's active strikes, and the action."""

    number: int
    action: str


class StrikeLedger:
    def __init__(self, store: Store) -> None:
        self.store = store

    def record(
        self,
        group_id: str,
        user_id: str,
        *,
        rule: str,
        at: datetime,
        window: timedelta,
        action_for: Callable[[int], str],
        only_rule: bool = False,
        message_id: str | None = None,
    ) -> Recorded:
        """Record one strike; `action_for(number)` names the action the strike number earns.

        Only strikes within `window` before `at` and not pardoned count (those of `rule` alone
        when `only_rule`).
        """
        at = utc(at)
        with self.store.begin() as connection:
            self._lock_holder(connection, group_id, user_id, at)
            rule_filter = rule if only_rule else None
            number = _count(connection, group_id, user_id, at - window, rule_filter) + 1
            action = action_for(number)
            connection.execute(
                insert(strikes).values(
                    group_id=group_id,
                    user_id=user_id,
                    rule=rule,
                    action=action,
                    message_id=message_id,
                    at=at,
                )
            )
            connection.execute(
                update(strike_holders)
                .where(strike_holders.c.group_id == group_id, strike_holders.c.user_id == user_id)
                .values(last_strike_at=at)
            )
        return Recorded(number, action)

    def count(
        self,
        group_id: str,
        user_id: str,
        *,
        at: datetime,
        window: timedelta,
        rule: str | None = None,
    ) -> int:
        """Active strikes (of `rule` alone when given), without recording anything."""
        with self.store.begin() as connection:
            return _count(connection, group_id, user_id, utc(at) - window, rule)

    def active(
        self, group_id: str, user_id: str, *, at: datetime, window: timedelta
    ) -> list[Strike]:
        """The strikes that count now, oldest first."""
        with self.store.begin() as connection:
            rows = connection.execute(
                select(
                    strikes.c.id,
                    strikes.c.rule,
                    strikes.c.action,
                    strikes.c.message_id,
                    strikes.c.at,
                )
                .where(*_active(group_id, user_id, utc(at) - window))
                .order_by(strikes.c.at, strikes.c.id)
            ).all()
        return [Strike(*row) for row in rows]

    def pardon(self, group_id: str, user_id: str, *, at: datetime, window: timedelta) -> int:
        """Pardon every strike of the user (expired ones too, so that no backdated message
        brings one back); returns how many of them counted (were within `window`)."""
        at = utc(at)
        with self.store.begin() as connection:
            self._lock_holder(connection, group_id, user_id, at)
            counted = _count(connection, group_id, user_id, at - window, None)
            connection.execute(
                update(strikes)
                .where(
                    strikes.c.group_id == group_id,
                    strikes.c.user_id == user_id,
                    strikes.c.pardoned_at.is_(None),
                )
                .values(pardoned_at=at)
            )
        return counted

    @staticmethod
    def _lock_holder(connection: Connection, group_id: str, user_id: str, at: datetime) -> None:
        """Make sure the user's row exists, then lock it until the transaction ends."""
        connection.execute(
            upsert(connection, strike_holders)
            .values(group_id=group_id, user_id=user_id, last_strike_at=at)
            .on_conflict_do_nothing()
        )
        connection.execute(
            select(strike_holders.c.group_id)
            .where(strike_holders.c.group_id == group_id, strike_holders.c.user_id == user_id)
            .with_for_update()
        )


def _active(group_id: str, user_id: str, since: datetime) -> list[ColumnElement[bool]]:
    return [
        strikes.c.group_id == group_id,
        strikes.c.user_id == user_id,
        strikes.c.pardoned_at.is_(None),
        strikes.c.at > since,
    ]


def _count(
    connection: Connection, group_id: str, user_id: str, since: datetime, rule: str | None
) -> int:
    conditions = _active(group_id, user_id, since)
    if rule is not None:
        conditions.append(strikes.c.rule == rule)
    total = connection.execute(select(func.count()).select_from(strikes).where(*conditions))
    return int(total.scalar_one())
