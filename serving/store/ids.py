"""Group and user ids as the store keeps them: what an id may contain, checked at the edge."""

from __future__ import annotations

import re

from serving.store.tables import ID_LENGTH

# Control characters (PostgreSQL text cannot hold NUL) and lone surrogates (not encodable as
# UTF-8, which both databases store) are refused.
_UNSTORABLE = re.compile(r"[\x00-\x1f\x7f\ud800-\udfff]")


def check_id(value: str, what: str = "id") -> str:
    """`value` when the store can keep it as a key; ValueError saying why not otherwise."""
    if not value:
        raise ValueError(f"{what} must not be empty")
    if len(value) > ID_LENGTH:
        raise ValueError(f"{what} must be at most {ID_LENGTH} characters")
    if _UNSTORABLE.search(value):
        raise ValueError(f"{what} must not contain control characters or lone surrogates")
    return value


def storable_text(value: str | None, limit: int = ID_LENGTH) -> str | None:
    """Free text (a client's message id) cut and cleaned so that any database can store it."""
    if value is None:
        return None
    return _UNSTORABLE.sub("\ufffd", value)[:limit]
