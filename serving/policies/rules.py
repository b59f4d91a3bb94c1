"""Which of a policy's rules a message breaks: pure checks, no database.

The duplicate rule needs the group's recent fingerprints and is checked by the engine
(`serving.policies.engine`); everything else is decided here from the message alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from serving.policies.model import SEVERITY, Policy, Rule


@dataclass(frozen=True, slots=True)
class Subject:
    """What the policy sees of one message or event."""

    event: str
    text: str | None
    labels: Sequence[str]  # text and image labels, highest score first
    local_time: datetime  # sent_at in the group's time zone
    nickname: str | None = None
    is_admin: bool = False
    duplicate_count: int | None = None  # image flood: earlier copies of the picture


@dataclass(frozen=True, slots=True)
class Violation:
    rule_name: str  # a label, or the rule's key in the policy (quiet_hours, nickname, ...)
    rule: Rule


def violations(policy: Policy, subject: Subject) -> list[Violation]:
    """The rules `subject` breaks whose action is not `none`, in the policy's order of
    precedence: labels (highest score first), then the other rules."""
    found = [
        Violation(label, policy.labels[label])
        for label in dict.fromkeys(subject.labels)
        if label in policy.labels
    ]
    if subject.event == "message":
        found += _message_rules(policy, subject)
    elif subject.event in ("join", "rename"):
        nickname = policy.nickname
        if nickname and subject.nickname is not None and not nickname.accepts(subject.nickname):
            found.append(Violation("nickname", nickname))
    elif subject.event == "invite" and policy.invitations and not subject.is_admin:
        found.append(Violation("invitations", policy.invitations))
    return [v for v in found if v.rule.action != "none"]


def _message_rules(policy: Policy, subject: Subject) -> list[Violation]:
    found: list[Violation] = []
    flood, copies = policy.image_flood, subject.duplicate_count
    if flood and copies is not None and copies >= flood.max_copies:
        found.append(Violation("image_flood", flood))
    quiet = policy.quiet_hours
    if quiet and quiet.contains(subject.local_time.time()):
        found.append(Violation("quiet_hours", quiet))
    longest = policy.max_length
    if longest and subject.text is not None and len(subject.text) > longest.chars:
        found.append(Violation("max_length", longest))
    return found


def most_severe(found: Sequence[Violation]) -> Violation | None:
    """The violation that acts: the most severe action, the first one among equals."""
    best: Violation | None = None
    for violation in found:
        if best is None or SEVERITY[violation.rule.action] > SEVERITY[best.rule.action]:
            best = violation
    return best
