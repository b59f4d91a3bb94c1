"""POST /v1/classify: texts through the batcher, images through the image pool (serving.images)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from typing import Any

from fastapi import APIRouter, Request
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.responses import Response

from models.image import ImageResult
from models.labels import IMAGE_LABELS
from serving.auth import check_api_key
from serving.engine import Classified
from serving.errors import ApiError
from serving.images import merge_image
from serving.policy import decide_actions
from serving.render import json_response
from serving.routers._responses import errors
from serving.schemas import ClassifyRequest, ClassifyResponse, Message
from serving.service import Service

router = APIRouter(prefix="/v1", tags=["classify"])
log = logging.getLogger("qunguard.classify")

# The body is documented from ClassifyRequest (serving.app adds its schema to the components)
# and parsed below with pydantic's JSON parser.
REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ClassifyRequest"}}
        },
    }
}


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=errors(400, 401, 413, 415, 422, 503),
    openapi_extra=REQUEST_BODY,
)
async def classify(request: Request) -> Response:
    """Classify 1 to 256 messages; results in request order.

    The response is assembled from the dictionaries the batch worker built and serialised
    once, not validated again against `ClassifyResponse`.
    """
    # The hot path: FastAPI's dependency resolver costs about 10 µs per dependency, so the
    # service comes straight from the app state and the key is checked inline.
    service: Service = request.app.state.service
    check_api_key(service.keys, request.headers.get("authorization"))
    body = await _parse(request)
    messages = body.messages
    engine, classified, images = await service.classify_messages(messages, dry_run=body.dry_run)
    # A message with a picture gets one verdict over its text and the picture's text (the merge
    # rule: serving.images.merge_image) and the contract's image object.
    classified = list(classified)
    pictures: list[dict[str, Any] | None] = [None] * len(messages)
    for i, image in enumerate(images):
        if image is not None:
            classified[i] = merge_image(classified[i], image, engine.thresholds)
            pictures[i] = image.to_dict()
    # The group policies' actions (a worker thread, only when a message names a group).
    actions = await decide_actions(
        request.app.state.policies,
        messages,
        [item.result for item in classified],
        dry_run=body.dry_run,
        images=pictures,
    )
    results = []
    for message, item, picture, action in zip(messages, classified, pictures, actions, strict=True):
        results.append({"id": message.id, **item.payload, "image": picture, "action": action})
    service.metrics.observe_results(_emitted(classified, images))
    if service.settings.access_log:
        _log_request(service, messages, classified)
    version = {"text": engine.version, "image": service.images.version}
    return json_response({"model_version": version, "results": results})


def _emitted(
    classified: Sequence[Classified], images: Sequence[ImageResult | None]
) -> Iterator[list[str]]:
    """Each message's labels for the metrics: text labels, then its picture's image labels."""
    for item, image in zip(classified, images, strict=True):
        if image is None:
            yield item.result.labels
        else:
            yield item.result.labels + [label for label in image.labels if label in IMAGE_LABELS]


def _log_request(service: Service, messages: list[Message], classified: list[Classified]) -> None:
    entry: dict[str, object] = {
        "messages": len(messages),
        "labels": [item.result.labels for item in classified],
        "ids": [m.id for m in messages],
    }
    if service.settings.log_text:
        entry["texts"] = [m.text for m in messages]
    log.info("classified", extra={"detail": entry})


async def _parse(request: Request) -> ClassifyRequest:
    """The body as a ClassifyRequest, parsed and validated in one pass by pydantic-core.

    This is the hot path: FastAPI's own body handling (json.loads, then validation through
    its dependency resolver) costs several times more per request. Errors take the same
    route as FastAPI's (RequestValidationError, rendered by serving.errors). JSON that
    pydantic-core refuses but the standard library reads (lone surrogates in strings, valid
    JSON) goes the standard library's way, as it did through FastAPI; a body declared as
    something other than JSON gets 415 (none declared is read as JSON).
    """
    content_type = request.headers.get("content-type")
    if content_type is not None and "json" not in content_type.lower():
        raise ApiError(
            415, "unsupported_media_type", "send JSON with Content-Type: application/json"
        )
    raw = await request.body()
    if not raw:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "required"}])
    try:
        return ClassifyRequest.model_validate_json(raw)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        if not any(problem["type"] == "json_invalid" for problem in problems):
            raise RequestValidationError(problems) from None
    try:
        data = json.loads(raw)
    except ValueError:
        raise RequestValidationError([{"type": "json_invalid", "loc": ("body",)}]) from None
    try:
        return ClassifyRequest.model_validate(data)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        raise RequestValidationError(problems) from None
