"""Moderator reports: `POST /v1/reports` (any key) stores a labelled example for retraining,
`GET /v1/reports?after_id=&limit=` (admin key) pages through them in id order.

A report is committed to the service database before the 201 answer. The same report again
(the same normalised text and/or picture, the same labels, the same group) is not stored a
second time: the answer is 200 with the existing id and `"duplicate": true` (a new one is 201
with `"duplicate": false`), so `{"id": ...}` holds either way. `python -m training.reports
export` writes the stored reports as the JSONL that `training.train --reports` reads.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from models.image.decode import MAX_BYTES, ImageError, b64_to_bytes, decode_image
from serving.auth import require_admin_key, require_api_key
from serving.errors import ApiError
from serving.routers._responses import errors
from serving.schemas import MAX_TEXT_CHARS, TextLabel
from serving.store.db import unavailable_as_503
from serving.store.ids import check_id
from serving.store.reports import ReportTable
from serving.store.tables import ID_LENGTH

router = APIRouter(prefix="/v1", tags=["reports"])

T = TypeVar("T")
MAX_NOTE_CHARS = 2_000
MAX_PAGE = 1_000
MAX_ID = 2**63 - 1  # the largest id a database integer holds
# NUL (PostgreSQL text cannot hold it) and lone surrogates (not UTF-8) cannot be stored.
_UNSTORABLE = re.compile(r"[\x00\ud800-\udfff]")


def _storable(value: str | None, what: str) -> str | None:
    if value is not None and _UNSTORABLE.search(value):
        raise ValueError(f"{what} must not contain NUL characters or lone surrogates")
    return value


class ReportRequest(BaseModel):
    """A moderator's labelled example: the message as it should have been labelled."""

    text: str | None = Field(
        None, min_length=1, max_length=MAX_TEXT_CHARS, description="The message text."
    )
    image: str | None = Field(
        None, description="Base64 of a JPEG/PNG/GIF/WebP image, up to 10 MiB decoded."
    )
    labels: list[TextLabel] = Field(  # type: ignore[valid-type]
        max_length=32, description="The right text labels; an empty list means clean."
    )
    message_id: str | None = Field(
        None, max_length=ID_LENGTH, description="The classified message's id, if any."
    )
    group_id: str | None = Field(None, max_length=ID_LENGTH, description="The group.")
    reporter: str | None = Field(None, max_length=ID_LENGTH, description="Who reports.")
    note: str | None = Field(None, max_length=MAX_NOTE_CHARS, description="Free text.")

    @field_validator("message_id", "group_id", "reporter")
    @classmethod
    def _storable_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_id(value, str(info.field_name))

    @field_validator("text", "note")
    @classmethod
    def _storable_text(cls, value: str | None, info: ValidationInfo) -> str | None:
        return _storable(value, str(info.field_name))

    @field_validator("text")
    @classmethod
    def _not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("text must not be blank")
        return value

    @model_validator(mode="after")
    def _has_content(self) -> ReportRequest:
        if self.text is None and self.image is None:
            raise ValueError("a report needs text or image")
        return self


class ReportCreated(BaseModel):
    id: int = Field(description="The report's id (the existing one for a duplicate).")
    duplicate: bool = Field(
        False, description="True (status 200) when the same report was stored before."
    )


class Report(BaseModel):
    id: int
    created_at: datetime
    text: str | None
    labels: list[str]
    group_id: str | None
    reporter: str | None
    note: str | None
    message_id: str | None
    image_sha256: str | None = Field(description="SHA-256 of the stored picture, if any.")


class ReportsPage(BaseModel):
    reports: list[Report]
    next_after_id: int | None = Field(
        description="Pass as after_id for the next page; null when no more reports follow."
    )


async def _blocking(function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    with unavailable_as_503():
        return await asyncio.to_thread(function, *args, **kwargs)


def _table(request: Request) -> ReportTable:
    return ReportTable(request.app.state.store)


def _image_bytes(data: str) -> bytes:
    """The picture's bytes once checked to be an image the service accepts."""
    raw = b64_to_bytes(data)
    if len(raw) > MAX_BYTES:
        raise ImageError(f"image is {len(raw)} bytes, over {MAX_BYTES}")
    decode_image(raw)
    return raw


@router.post(
    "/reports",
    status_code=201,
    response_model=ReportCreated,
    dependencies=[Depends(require_api_key)],
    responses={
        200: {"model": ReportCreated, "description": "The same report was stored before"},
        **errors(400, 401, 413, 415, 422, 503),
    },
)
async def post_report(report: ReportRequest, request: Request) -> Any:
    """Store a moderator's report durably (committed before the answer)."""
    image = None
    if report.image is not None:
        try:
            image = await asyncio.to_thread(_image_bytes, report.image)
        except ImageError as exc:
            raise ApiError(exc.status, exc.code, f"image: {exc.message}") from exc
    added = await _blocking(
        _table(request).add,
        text=report.text,
        image=image,
        labels=report.labels,
        group_id=report.group_id,
        reporter=report.reporter,
        note=report.note,
        message_id=report.message_id,
        at=datetime.now(UTC),
    )
    body = {"id": added.id, "duplicate": added.duplicate}
    return JSONResponse(body, status_code=200 if added.duplicate else 201)


@router.get(
    "/reports",
    response_model=ReportsPage,
    dependencies=[Depends(require_admin_key)],
    responses=errors(401, 403, 422, 503),
)
async def list_reports(
    request: Request,
    after_id: Annotated[int, Query(ge=0, le=MAX_ID, description="Reports with a larger id")] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Reports per page")] = 100,
) -> ReportsPage:
    """Reports in id order (oldest first), `limit` at a time (admin)."""
    rows, more = await _blocking(_table(request).page, after_id, limit)
    reports = [Report(**row) for row in rows]
    return ReportsPage(reports=reports, next_after_id=reports[-1].id if more and reports else None)
