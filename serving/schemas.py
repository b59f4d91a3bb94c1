"""The HTTP contract (shared/API.md) as pydantic models: the single source of `/openapi.json`.

Requests are validated with these models. Responses of `/v1/classify` are built as plain
dictionaries in the batch worker and serialised once (validating hundreds of nested results
per request again would cost more than the model); the models below still document them, and
the tests check real responses against them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    create_model,
    field_validator,
    model_validator,
)

from models.labels import (
    IMAGE_LABEL_DESCRIPTIONS,
    IMAGE_LABELS,
    TEXT_LABEL_DESCRIPTIONS,
    TEXT_LABELS,
)
from serving.store.ids import check_id
from serving.store.tables import ID_LENGTH

MAX_MESSAGES = 256
MAX_TEXT_CHARS = 10_000

TextLabel = Literal[TEXT_LABELS]  # type: ignore[valid-type]
AnyLabel = Literal[TEXT_LABELS + IMAGE_LABELS]  # type: ignore[valid-type]
EvidenceSource = Literal["model", "lexicon", "contact", "ocr", "qrcode", "rule"]
ContactType = Literal["wechat", "qq", "phone", "url", "email"]
EventType = Literal["message", "join", "rename", "invite"]
ActionType = Literal["none", "remind", "warn", "remove", "review"]


class Message(BaseModel):
    """One chat message (or group event) to classify."""

    id: str | None = Field(None, description="Optional client id, echoed back.")
    text: str | None = Field(
        None, min_length=1, max_length=MAX_TEXT_CHARS, description="Message text."
    )
    image: str | None = Field(
        None, description="Base64 of a JPEG/PNG/GIF/WebP image, up to 10 MiB decoded."
    )
    group_id: str | None = Field(
        None, max_length=ID_LENGTH, description="With it the group's policy decides an action."
    )
    user_id: str | None = Field(
        None, max_length=ID_LENGTH, description="With it strikes are counted."
    )
    nickname: str | None = Field(None, description="Group nickname (for nickname rules).")
    sent_at: datetime | None = Field(None, description="RFC 3339 time; default: now.")
    event: EventType = "message"
    is_admin: bool = False

    @field_validator("group_id", "user_id")
    @classmethod
    def _storable_id(cls, value: str | None, info: ValidationInfo) -> str | None:
        return None if value is None else check_id(value, str(info.field_name))

    @model_validator(mode="after")
    def _has_content(self) -> Message:
        if self.text is None and self.image is None and self.event == "message":
            raise ValueError("a message needs text or image (or an event other than message)")
        return self


class ClassifyRequest(BaseModel):
    messages: list[Message] = Field(min_length=1, max_length=MAX_MESSAGES)
    dry_run: bool = Field(False, description="Decide actions but record no strikes.")


Scores = create_model(
    "Scores",
    __doc__="Every text label's score in [0, 1], always all of them.",
    **{
        label: (float, Field(ge=0.0, le=1.0, description=TEXT_LABEL_DESCRIPTIONS[label]))
        for label in TEXT_LABELS
    },
)


class Evidence(BaseModel):
    label: AnyLabel
    source: EvidenceSource
    text: str
    start: int = Field(ge=0, description="Span start in the ORIGINAL text (Python offsets).")
    end: int = Field(ge=0, description="Span end in the ORIGINAL text.")


class Contact(BaseModel):
    type: ContactType
    value: str


class ImageResult(BaseModel):
    labels: list[AnyLabel]
    scores: dict[str, float]
    qrcodes: list[str]
    ocr_text: str
    duplicate_count: int = Field(ge=0)
    unavailable: list[str] | None = Field(
        None, description="Detectors not installed (e.g. nsfw); absent when all ran."
    )


class Action(BaseModel):
    type: ActionType
    rule: str | None = None
    strike: int | None = None
    reply: str | None = None


class MessageResult(BaseModel):
    id: str | None
    flagged: bool
    labels: list[TextLabel] = Field(description="Labels at or over threshold, highest first.")
    scores: Scores  # type: ignore[valid-type]
    evidence: list[Evidence]
    contacts: list[Contact]
    image: ImageResult | None
    action: Action | None


class ModelVersion(BaseModel):
    text: str | None
    image: str | None


class ClassifyResponse(BaseModel):
    model_version: ModelVersion
    results: list[MessageResult] = Field(description="In request order.")


class LabelInfo(BaseModel):
    name: str
    description: str
    threshold: float | None = Field(description="Current threshold; null without a model.")


class LabelsResponse(BaseModel):
    text: list[LabelInfo]
    image: list[LabelInfo]


class Health(BaseModel):
    status: Literal["ok"]


class Readiness(BaseModel):
    """200 once a model is loaded and warm; before that 503 `not_ready` with the reason."""

    status: Literal["ready"]
    model_version: ModelVersion


class ReloadResponse(BaseModel):
    model_version: ModelVersion
    previous: str | None = Field(description="The text model version served before.")
    folder: str


class ErrorDetail(BaseModel):
    code: str = Field(description="snake_case error code")
    message: str


class ErrorResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"description": "Every error has this shape."})

    error: ErrorDetail


def labels_response(thresholds: dict[str, float] | None) -> LabelsResponse:
    """The label list with the serving model's thresholds (None when no model is loaded)."""
    return LabelsResponse(
        text=[
            LabelInfo(
                name=name,
                description=TEXT_LABEL_DESCRIPTIONS[name],
                threshold=None if thresholds is None else thresholds[name],
            )
            for name in TEXT_LABELS
        ],
        image=[
            LabelInfo(name=name, description=IMAGE_LABEL_DESCRIPTIONS[name], threshold=None)
            for name in IMAGE_LABELS
        ],
    )
