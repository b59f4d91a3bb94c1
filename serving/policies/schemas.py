"""The answers of the group admin endpoints (policies and strikes), for /openapi.json."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from serving.policies.model import Policy


class PolicyResponse(BaseModel):
    group_id: str
    source: Literal["group", "default"] = Field(
        description="group: the group's own policy; default: the service's default preset."
    )
    updated_at: datetime | None = Field(description="When the group's policy was last set.")
    policy: Policy


class StrikeInfo(BaseModel):
    id: int
    rule: str = Field(description="The label or rule broken (ad, quiet_hours, ...).")
    action: Literal["warn", "remove"]
    message_id: str | None
    at: datetime


class StrikesResponse(BaseModel):
    group_id: str
    user_id: str
    active: int = Field(ge=0, description="Strikes that count now (in the window, not pardoned).")
    strike_window_days: float
    strikes: list[StrikeInfo] = Field(description="The active strikes, oldest first.")
    pardoned: int | None = Field(
        None, description="After DELETE: how many strikes that counted were pardoned."
    )
