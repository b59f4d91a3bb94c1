"""POST /v1/classify: text messages through the batcher; images are not supported yet."""

from __future__ import annotations

import logging

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from serving.auth import require_api_key
from serving.engine import Classified
from serving.errors import ApiError
from serving.policy import decide_action
from serving.render import json_response
from serving.routers._responses import errors
from serving.schemas import ClassifyRequest, ClassifyResponse, Message
from serving.service import Service

router = APIRouter(prefix="/v1", tags=["classify"], dependencies=[Depends(require_api_key)])
log = logging.getLogger("qunguard.classify")


@router.post(
    "/classify",
    response_model=ClassifyResponse,
    responses=errors(400, 401, 413, 415, 422, 503),
)
async def classify(body: ClassifyRequest, request: Request) -> Response:
    """Classify 1 to 256 messages; results in request order.

    The response is assembled from the dictionaries the batch worker built and serialised
    once, not validated again against `ClassifyResponse`.
    """
    # The hot path: FastAPI's dependency resolver costs about 10 µs per dependency, so the
    # service comes straight from the app state here (auth stays a dependency).
    service: Service = request.app.state.service
    messages = body.messages
    for i, message in enumerate(messages):
        if message.image is not None:
            raise ApiError(
                422,
                "image_not_supported",
                f"messages.{i}.image: images are not supported yet; send the text only",
            )
    engine, classified = await service.classify([m.text for m in messages])
    results = []
    for message, item in zip(messages, classified, strict=True):
        action = decide_action(message, item.result, dry_run=body.dry_run)
        results.append(
            {
                "id": message.id,
                **item.payload,
                "image": None,
                "action": None if action is None else action.model_dump(mode="json"),
            }
        )
    service.metrics.observe_results(item.result.labels for item in classified)
    if service.settings.access_log:
        _log_request(service, messages, classified)
    version = {"text": engine.version, "image": None}
    return json_response({"model_version": version, "results": results})


def _log_request(
    service: Service, messages: list[Message], classified: list[Classified]
) -> None:
    entry: dict[str, object] = {
        "messages": len(messages),
        "labels": [item.result.labels for item in classified],
        "ids": [m.id for m in messages],
    }
    if service.settings.log_text:
        entry["texts"] = [m.text for m in messages]
    log.info("classified", extra={"detail": entry})
