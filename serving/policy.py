"""The seam where group policies decide actions (warn, remove, ...) for classified messages.

A message without `group_id` gets no action (null, as the contract has it); with one, the
group's policy (`serving.policies`) decides, counting strikes per `user_id`. Deciding touches
the database, so `decide_actions` runs it in a worker thread, and only when a message of the
request names a group: requests without groups never leave the event loop for it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

from models.fusion import FusionResult
from serving.policies.engine import Case, PolicyEngine
from serving.schemas import Action, Message
from serving.store.db import unavailable_as_503


def decide_action(
    message: Message,
    result: FusionResult,
    *,
    dry_run: bool,
    engine: PolicyEngine,
    image: Mapping[str, Any] | None = None,
) -> Action | None:
    """The action for one classified message, or None when it names no group.

    `image` is the contract's image object when the message had a picture: its labels count
    like text labels and its `duplicate_count` feeds the image flood rule.
    """
    if message.group_id is None:
        return None
    labels = list(result.labels)
    duplicate_count = None
    if image is not None:
        labels += [label for label in image.get("labels", ()) if label not in labels]
        duplicate_count = image.get("duplicate_count")
    case = Case(
        group_id=message.group_id,
        user_id=message.user_id,
        message_id=message.id,
        nickname=message.nickname,
        event=message.event,
        text=message.text,
        labels=labels,
        sent_at=message.sent_at,
        is_admin=message.is_admin,
        duplicate_count=duplicate_count,
    )
    return engine.decide(case, dry_run=dry_run)


async def decide_actions(
    engine: PolicyEngine,
    messages: Sequence[Message],
    results: Sequence[FusionResult],
    *,
    dry_run: bool,
    images: Sequence[Mapping[str, Any] | None] | None = None,
) -> list[dict[str, Any] | None]:
    """JSON-ready actions for a request's messages, in order (None where no group)."""
    if not any(message.group_id is not None for message in messages):
        return [None] * len(messages)
    pictures = images if images is not None else [None] * len(messages)

    def decide_all() -> list[dict[str, Any] | None]:
        actions = []
        for message, result, image in zip(messages, results, pictures, strict=True):
            action = decide_action(message, result, dry_run=dry_run, engine=engine, image=image)
            actions.append(None if action is None else action.model_dump(mode="json"))
        return actions

    with unavailable_as_503():
        return await asyncio.to_thread(decide_all)
