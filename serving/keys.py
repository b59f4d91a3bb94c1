"""The configured API keys, compared in constant time (hmac.compare_digest)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable


class KeyRing:
    """The configured keys. Admin keys are accepted wherever a user key is."""

    def __init__(self, api_keys: Iterable[str], admin_keys: Iterable[str]) -> None:
        self._admin = [key.encode() for key in admin_keys]
        self._user = [key.encode() for key in api_keys] + self._admin

    @property
    def enabled(self) -> bool:
        return bool(self._user)

    def is_user(self, key: str) -> bool:
        return _matches(key, self._user)

    def is_admin(self, key: str) -> bool:
        return _matches(key, self._admin)


def _matches(key: str, keys: list[bytes]) -> bool:
    """Compare with every key in constant time (no early exit that would leak which).

    Header values arrive decoded as latin-1, so encoding back to latin-1 gives the raw bytes
    the client sent, which match a UTF-8 key as written in the environment.
    """
    candidate = key.encode("latin-1", "replace")
    found = False
    for known in keys:
        found |= hmac.compare_digest(candidate, known)
    return found
