"""A group's policy document (YAML or JSON), validated with pydantic.

Every rule has an `action`: `none` (allowed), `remind` (a reply, no strike), `warn` (a strike;
with `remove_on_strike: N` the user's N-th active strike removes them), `remove` (a strike and
removal at once) or `review` (left to the group's moderators, no strike). An optional `reply`
replaces our Chinese reply text; it may use {name} (the nickname, else the user id),
{strike} (the strike number) and {limit} (remove_on_strike).
"""

from __future__ import annotations

import string
from datetime import time, timedelta
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import regex
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from models.labels import IMAGE_LABELS, TEXT_LABELS

ActionType = Literal["none", "remind", "warn", "remove", "review"]
PolicyLabel = Literal[TEXT_LABELS + IMAGE_LABELS]  # type: ignore[valid-type]

# Actions by severity: when several rules apply to one message, the most severe one acts.
SEVERITY: dict[str, int] = {"none": 0, "remind": 1, "review": 2, "warn": 3, "remove": 4}
STRIKE_ACTIONS = frozenset({"warn", "remove"})
REPLY_FIELDS = frozenset({"name", "strike", "limit"})
MAX_PATTERN_CHARS = 200
# Nickname patterns come from group admins: the `regex` module's timeout keeps a pattern with
# catastrophic backtracking from holding a worker thread; such a check counts as a match.
PATTERN_TIMEOUT_S = 0.05


class Rule(BaseModel):
    """What happens when a message breaks one rule."""

    model_config = ConfigDict(extra="forbid")

    action: ActionType = Field(description="none | remind | warn | remove | review")
    remove_on_strike: int | None = Field(
        None,
        ge=1,
        le=100,
        description="With action warn: the user's N-th active strike removes them.",
    )
    reply: str | None = Field(
        None,
        min_length=1,
        max_length=500,
        description="Our reply text instead of the built-in one; may use {name} {strike} {limit}.",
    )

    @field_validator("reply")
    @classmethod
    def _known_fields(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            parts = [part for part in string.Formatter().parse(value) if part[1] is not None]
        except ValueError as exc:
            raise ValueError(f"reply is not a valid template: {exc}") from exc
        if any(spec or conversion for _, _, spec, conversion in parts):
            raise ValueError("reply fields take no format (write {strike}, not {strike:>9})")
        unknown = sorted({name for _, name, _, _ in parts} - REPLY_FIELDS)
        if unknown:
            raise ValueError(
                f"reply uses unknown fields {unknown}; known: {{name}} {{strike}} {{limit}}"
            )
        return value

    @model_validator(mode="after")
    def _escalation_needs_warn(self) -> Rule:
        if self.remove_on_strike is not None and self.action != "warn":
            raise ValueError(
                f"remove_on_strike only goes with action warn (action is {self.action})"
            )
        return self


class QuietHours(Rule):
    """Messages sent between `start` and `end` (the group's time zone; may span midnight)."""

    action: ActionType = "remind"
    start: time = Field(description='Local time, e.g. "22:00" (quoted in YAML).')
    end: time

    @field_validator("start", "end", mode="before")
    @classmethod
    def _not_a_number(cls, value: object) -> object:
        # YAML 1.1 reads an unquoted 22:00 as the base-60 number 1320.
        if isinstance(value, int | float):
            raise ValueError('write times as text, e.g. "22:00" (quoted in YAML)')
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> QuietHours:
        if self.start == self.end:
            raise ValueError("quiet_hours start and end must differ")
        return self

    def contains(self, moment: time) -> bool:
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


class MaxLength(Rule):
    """Messages longer than `chars` characters."""

    action: ActionType = "remind"
    chars: int = Field(ge=1, le=10_000)


class Duplicates(Rule):
    """The same text (after normalisation) posted again in the group within the window."""

    action: ActionType = "warn"
    labels: list[PolicyLabel] = Field(
        default_factory=list,
        description="Only messages with one of these labels count; empty: every text message.",
    )
    window_days: float = Field(30, gt=0, le=3650)

    @property
    def window(self) -> timedelta:
        return timedelta(days=self.window_days)


class ImageFlood(Rule):
    """More than `max_copies` copies of one picture within the image flood counter's window."""

    action: ActionType = "warn"
    max_copies: int = Field(ge=1, le=1000)


class Nickname(Rule):
    """Nicknames on join and rename events must match `pattern` (the whole nickname)."""

    action: ActionType = "remind"
    pattern: str = Field(min_length=1, max_length=MAX_PATTERN_CHARS)
    example: str | None = Field(None, max_length=100, description="Shown in the reply.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            regex.compile(value)
        except regex.error as exc:
            raise ValueError(f"pattern is not a valid regular expression: {exc}") from exc
        return value

    def accepts(self, nickname: str) -> bool:
        try:
            return regex.fullmatch(self.pattern, nickname, timeout=PATTERN_TIMEOUT_S) is not None
        except TimeoutError:
            return True


class Invitations(Rule):
    """Invite events from members who are not admins (admins may always invite)."""

    action: ActionType = "remind"


class Policy(BaseModel):
    """A group's house rules as actions. Labels not listed are allowed."""

    model_config = ConfigDict(extra="forbid")

    preset: str | None = Field(
        None,
        max_length=100,
        description="The preset (data/policies/<name>.yaml) this policy starts from; "
        "its other keys replace the preset's (labels: label by label).",
    )
    name: str | None = Field(None, max_length=100)
    description: str | None = Field(None, max_length=1000)
    timezone: str = Field("Asia/Shanghai", description="IANA time zone of quiet hours.")
    admins_exempt: bool = True
    dry_run: bool = Field(False, description="Decide actions but record no strikes.")
    strike_window_days: float = Field(
        30, gt=0, le=3650, description="Strikes older than this no longer count."
    )
    strikes_per_rule: bool = Field(
        False,
        description="Count strikes per rule (an ad after an insult is a first ad strike) "
        "instead of across all rules.",
    )
    labels: dict[PolicyLabel, Rule] = Field(default_factory=dict)
    quiet_hours: QuietHours | None = None
    max_length: MaxLength | None = None
    duplicates: Duplicates | None = None
    image_flood: ImageFlood | None = None
    nickname: Nickname | None = None
    invitations: Invitations | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name)") from exc
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def strike_window(self) -> timedelta:
        return timedelta(days=self.strike_window_days)
