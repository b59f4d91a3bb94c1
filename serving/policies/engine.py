"""The policy engine: a group's policy, its strikes and fingerprints, and the action they give.

Blocking (database calls): run it in a worker thread, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from serving.policies.model import STRIKE_ACTIONS, Policy, Rule
from serving.policies.presets import load_preset, resolve
from serving.policies.replies import reply_text
from serving.policies.rules import Subject, Violation, most_severe, violations
from serving.schemas import Action
from serving.store.db import Store
from serving.store.fingerprints import FingerprintStore, fingerprint
from serving.store.ids import storable_text
from serving.store.policies import PolicyTable
from serving.store.strikes import StrikeLedger

log = logging.getLogger("qunguard.policy")

NO_ACTION = Action(type="none")


@dataclass(frozen=True, slots=True)
class GroupPolicy:
    policy: Policy
    source: str  # "group" (its own) or "default"
    updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class Case:
    """One message or event of a group, as the engine needs it."""

    group_id: str
    user_id: str | None
    message_id: str | None
    nickname: str | None
    event: str
    text: str | None
    labels: list[str]
    sent_at: datetime | None
    is_admin: bool = False
    duplicate_count: int | None = None


class PolicyEngine:
    """Decides actions for a store; one per app (thread-safe)."""

    def __init__(self, store: Store, *, default_preset: str, cache_s: float = 5.0) -> None:
        self.store = store
        self.default_preset = default_preset
        self.default = load_preset(default_preset)
        self.policies = PolicyTable(store)
        self.ledger = StrikeLedger(store)
        self.fingerprints = FingerprintStore(store)
        # Another process may change a group's policy: it is read again after cache_s.
        self._cache_s = cache_s
        self._cache: dict[str, tuple[float, GroupPolicy]] = {}
        self._lock = threading.Lock()

    def policy_for(self, group_id: str) -> GroupPolicy:
        now = time.monotonic()
        with self._lock:
            cached = self._cache.get(group_id)
        if cached is not None and now - cached[0] < self._cache_s:
            return cached[1]
        stored = self.policies.get(group_id)
        found = GroupPolicy(self.default, "default", None)
        if stored is not None:
            try:
                policy = Policy.model_validate(stored.document)
            except ValidationError as exc:
                # Stored by an older version with other rules: serve the default rather than
                # fail every message of the group; the admin sees source "default" and resets.
                log.error("stored policy invalid", extra={"group_id": group_id, "error": str(exc)})
            else:
                found = GroupPolicy(policy, "group", stored.updated_at)
        self._remember(group_id, found)
        return found

    def set_policy(self, group_id: str, document: Any) -> GroupPolicy:
        """Validate and store a group's policy; raises PolicyError (nothing changes) if bad."""
        policy = resolve(document, default_preset=self.default_preset)
        now = datetime.now(UTC)
        self.policies.put(group_id, policy.model_dump(mode="json"), now)
        found = GroupPolicy(policy, "group", now)
        self._remember(group_id, found)
        return found

    def reset_policy(self, group_id: str) -> GroupPolicy:
        """Drop the group's own policy: it gets the default again."""
        self.policies.delete(group_id)
        found = GroupPolicy(self.default, "default", None)
        self._remember(group_id, found)
        return found

    def _remember(self, group_id: str, found: GroupPolicy) -> None:
        with self._lock:
            if len(self._cache) > 100_000:
                self._cache.clear()
            self._cache[group_id] = (time.monotonic(), found)

    def decide(self, case: Case, *, dry_run: bool = False) -> Action:
        """The action for one message or event; records strikes and fingerprints unless
        `dry_run` (or the policy's own dry_run) says not to."""
        policy = self.policy_for(case.group_id).policy
        if policy.admins_exempt and case.is_admin:
            return NO_ACTION
        record = not (dry_run or policy.dry_run)
        at = _aware(case.sent_at, policy)
        subject = Subject(
            event=case.event,
            text=case.text,
            labels=case.labels,
            local_time=at.astimezone(policy.zone),
            nickname=case.nickname,
            is_admin=case.is_admin,
            duplicate_count=case.duplicate_count,
        )
        found = violations(policy, subject)
        duplicate = self._duplicate(policy, case, at, record=record)
        if duplicate is not None:
            found.insert(len([v for v in found if v.rule_name in policy.labels]), duplicate)
        chosen = most_severe(found)
        if chosen is None:
            return NO_ACTION
        return self._act(policy, case, chosen, at, record=record)

    def _duplicate(
        self, policy: Policy, case: Case, at: datetime, *, record: bool
    ) -> Violation | None:
        rule = policy.duplicates
        if rule is None or case.event != "message" or not case.text or not case.text.strip():
            return None
        if rule.labels and not set(rule.labels) & set(case.labels):
            return None
        seen = self.fingerprints.seen(
            case.group_id,
            fingerprint(case.text),
            at=at,
            window=rule.window,
            user_id=case.user_id,
            record=record,
        )
        return Violation("duplicates", rule) if seen else None

    def _act(
        self, policy: Policy, case: Case, chosen: Violation, at: datetime, *, record: bool
    ) -> Action:
        rule = chosen.rule
        action = rule.action
        strike: int | None = None
        if action in STRIKE_ACTIONS and case.user_id is not None:
            strike, action = self._strike(policy, case, chosen, at, record=record)
        name = case.nickname or case.user_id
        reply = reply_text(chosen.rule_name, rule, action, name=name, strike=strike)
        return Action(type=action, rule=chosen.rule_name, strike=strike, reply=reply)

    def _strike(
        self, policy: Policy, case: Case, chosen: Violation, at: datetime, *, record: bool
    ) -> tuple[int, str]:
        assert case.user_id is not None
        rule = chosen.rule
        if not record:
            only = chosen.rule_name if policy.strikes_per_rule else None
            window = policy.strike_window
            number = self.ledger.count(case.group_id, case.user_id, at=at, window=window, rule=only)
            return number + 1, _escalate(rule, number + 1)
        recorded = self.ledger.record(
            case.group_id,
            case.user_id,
            rule=chosen.rule_name,
            at=at,
            window=policy.strike_window,
            action_for=lambda number: _escalate(rule, number),
            only_rule=policy.strikes_per_rule,
            message_id=storable_text(case.message_id),
        )
        return recorded.number, recorded.action


def _escalate(rule: Rule, number: int) -> str:
    """warn, or remove once the strike number reaches the rule's remove_on_strike."""
    if rule.action == "remove":
        return "remove"
    if rule.remove_on_strike is not None and number >= rule.remove_on_strike:
        return "remove"
    return "warn"


def _aware(sent_at: datetime | None, policy: Policy) -> datetime:
    """sent_at (a time without offset is the group's local time), default now."""
    if sent_at is None:
        return datetime.now(UTC)
    if sent_at.tzinfo is None:
        return sent_at.replace(tzinfo=policy.zone)
    return sent_at
