"""Group policies: house rules as actions (remind, warn, remove, review) with strikes that count.

`model` is the policy document, `presets` the presets under data/policies and how a group's
document becomes a policy, `rules` the checks, `replies` the Chinese replies, `engine` the
decisions with the database (`serving.store`), `schemas` the admin endpoints' answers.
"""

from __future__ import annotations

from serving.policies.engine import PolicyEngine
from serving.settings import Settings
from serving.store import open_store


def open_policy_engine(settings: Settings) -> PolicyEngine:
    """The store for these settings (tables created) and the policy engine on it."""
    store = open_store(settings.data_dir, settings.database_url)
    return PolicyEngine(
        store, default_preset=settings.default_policy, cache_s=settings.policy_cache_s
    )
