"""The seam where group policies will decide actions (warn, remove, ...): none exist yet.

The policy engine will replace `decide_action`; until then every result's action is null,
as the contract has it for messages without a group policy.
"""

from __future__ import annotations

from models.fusion import FusionResult
from serving.schemas import Action, Message


def decide_action(message: Message, result: FusionResult, *, dry_run: bool) -> Action | None:
    """The action for one classified message, or None when no policy applies."""
    return None
