"""Route dependencies that check `Authorization: Bearer <key>` against the KeyRing."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from serving.errors import ApiError
from serving.keys import KeyRing

bearer = HTTPBearer(auto_error=False, description="An API key (admin routes: an admin key).")
BearerDep = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def _unauthorized(message: str) -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def check_api_key(keys: KeyRing, authorization: str | None) -> None:
    """`Authorization: Bearer <key>` against any configured key; open when none are configured.

    A plain function for the classify hot path, where a FastAPI dependency costs more than
    the check itself.
    """
    scheme, _, key = (authorization or "").partition(" ")
    _check_user(keys, key.strip() if scheme.lower() == "bearer" else None)


async def require_api_key(request: Request, credentials: BearerDep) -> None:
    """Any configured key (user or admin); open when no keys are configured."""
    _check_user(request.app.state.service.keys, credentials.credentials if credentials else None)


def _check_user(keys: KeyRing, key: str | None) -> None:
    if not keys.enabled:
        return
    if not key:
        raise _unauthorized("an API key is required: Authorization: Bearer <key>")
    if not keys.is_user(key):
        raise _unauthorized("the API key is not valid")


async def require_admin_key(request: Request, credentials: BearerDep) -> None:
    """An admin key; a valid non-admin key gets 403. Open when no keys are configured."""
    keys = request.app.state.service.keys
    if not keys.enabled:
        return
    if credentials is None:
        raise _unauthorized("an admin key is required: Authorization: Bearer <key>")
    if keys.is_admin(credentials.credentials):
        return
    if keys.is_user(credentials.credentials):
        raise ApiError(403, "forbidden", "this endpoint needs an admin key")
    raise _unauthorized("the API key is not valid")
