"""Group admin endpoints (admin key): a group's policy, and a user's strikes (pardon)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Path, Request

from serving.auth import require_admin_key
from serving.errors import ApiError
from serving.policies.engine import GroupPolicy, PolicyEngine
from serving.policies.presets import MalformedDocument, PolicyError, parse_document, preset_names
from serving.policies.schemas import PolicyResponse, StrikeInfo, StrikesResponse
from serving.routers._responses import errors
from serving.store.db import unavailable_as_503
from serving.store.ids import check_id
from serving.store.tables import ID_LENGTH

router = APIRouter(prefix="/v1/groups", tags=["groups"], dependencies=[Depends(require_admin_key)])

T = TypeVar("T")
MAX_POLICY_BYTES = 64 * 1024
GroupId = Annotated[str, Path(min_length=1, max_length=ID_LENGTH)]
UserId = Annotated[str, Path(min_length=1, max_length=ID_LENGTH)]

_DOCUMENT = {"$ref": "#/components/schemas/Policy"}
PUT_BODY = {
    "requestBody": {
        "required": True,
        "description": "A policy document as JSON or YAML (Content-Type: application/yaml). "
        f"`preset` names the preset to start from ({', '.join(preset_names())}; default: the "
        "service's default); the other keys replace the preset's, `labels` label by label.",
        "content": {
            "application/json": {"schema": _DOCUMENT},
            "application/yaml": {"schema": _DOCUMENT},
        },
    }
}


async def _blocking(function: Callable[..., T], *args: Any) -> T:
    """Database work in a worker thread; an unreachable database answers 503."""
    with unavailable_as_503():
        return await asyncio.to_thread(function, *args)


def _engine(request: Request) -> PolicyEngine:
    return request.app.state.policies


def _ids(**ids: str) -> None:
    for what, value in ids.items():
        try:
            check_id(value, what)
        except ValueError as exc:
            raise ApiError(422, "invalid_request", str(exc)) from exc


def _policy_answer(group_id: str, found: GroupPolicy) -> PolicyResponse:
    return PolicyResponse(
        group_id=group_id, source=found.source, updated_at=found.updated_at, policy=found.policy
    )


@router.get(
    "/{group_id}/policy", response_model=PolicyResponse, responses=errors(401, 403, 422, 503)
)
async def get_policy(group_id: GroupId, request: Request) -> PolicyResponse:
    """The group's policy: its own, or the default preset (`source` says which)."""
    _ids(group_id=group_id)
    found = await _blocking(_engine(request).policy_for, group_id)
    return _policy_answer(group_id, found)


@router.put(
    "/{group_id}/policy",
    response_model=PolicyResponse,
    responses=errors(400, 401, 403, 413, 422, 503),
    openapi_extra=PUT_BODY,
)
async def put_policy(group_id: GroupId, request: Request) -> PolicyResponse:
    """Set the group's policy. An invalid one is refused (422 `invalid_policy`, every problem
    named) and the group keeps the policy it had."""
    _ids(group_id=group_id)
    body = await request.body()
    if len(body) > MAX_POLICY_BYTES:
        raise ApiError(
            413, "payload_too_large", f"a policy document is at most {MAX_POLICY_BYTES} bytes"
        )
    content_type = request.headers.get("content-type", "application/json")
    engine = _engine(request)
    try:
        document = parse_document(body, content_type)
        found = await _blocking(engine.set_policy, group_id, document)
    except MalformedDocument as exc:
        raise ApiError(400, "malformed_json", str(exc)) from exc
    except PolicyError as exc:
        raise ApiError(422, "invalid_policy", f"the policy is not valid: {exc}") from exc
    return _policy_answer(group_id, found)


@router.delete(
    "/{group_id}/policy", response_model=PolicyResponse, responses=errors(401, 403, 422, 503)
)
async def delete_policy(group_id: GroupId, request: Request) -> PolicyResponse:
    """Drop the group's own policy: it gets the default again."""
    _ids(group_id=group_id)
    found = await _blocking(_engine(request).reset_policy, group_id)
    return _policy_answer(group_id, found)


def _strikes(engine: PolicyEngine, group_id: str, user_id: str) -> StrikesResponse:
    window = engine.policy_for(group_id).policy.strike_window
    active = engine.ledger.active(group_id, user_id, at=datetime.now(UTC), window=window)
    return StrikesResponse(
        group_id=group_id,
        user_id=user_id,
        active=len(active),
        strike_window_days=window.total_seconds() / 86400,
        strikes=[
            StrikeInfo(id=s.id, rule=s.rule, action=s.action, message_id=s.message_id, at=s.at)
            for s in active
        ],
    )


@router.get(
    "/{group_id}/users/{user_id}/strikes",
    response_model=StrikesResponse,
    responses=errors(401, 403, 422, 503),
)
async def get_strikes(group_id: GroupId, user_id: UserId, request: Request) -> StrikesResponse:
    """The user's strikes that count now (within the group's strike window, not pardoned)."""
    _ids(group_id=group_id, user_id=user_id)
    return await _blocking(_strikes, _engine(request), group_id, user_id)


@router.delete(
    "/{group_id}/users/{user_id}/strikes",
    response_model=StrikesResponse,
    responses=errors(401, 403, 422, 503),
)
async def pardon(group_id: GroupId, user_id: UserId, request: Request) -> StrikesResponse:
    """Pardon the user: none of their strikes so far counts any more (they stay on record)."""
    _ids(group_id=group_id, user_id=user_id)
    engine = _engine(request)

    def run() -> StrikesResponse:
        window = engine.policy_for(group_id).policy.strike_window
        pardoned = engine.ledger.pardon(group_id, user_id, at=datetime.now(UTC), window=window)
        return _strikes(engine, group_id, user_id).model_copy(update={"pardoned": pardoned})

    return await _blocking(run)
