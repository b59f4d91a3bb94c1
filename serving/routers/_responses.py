"""OpenAPI descriptions of the error answers, shared by the routers."""

from __future__ import annotations

from typing import Any

from serving.schemas import ErrorResponse


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """`responses=` entries for these error statuses, all in the contract's error format."""
    text = {
        400: "Malformed JSON",
        401: "Missing or wrong API key",
        403: "An admin key is needed",
        409: "The newest model is invalid; the running one stays",
        413: "Body too large",
        415: "The body is not JSON",
        422: "Invalid fields (or an image, not supported yet)",
        503: "Overloaded or no model; see Retry-After",
    }
    return {status: {"model": ErrorResponse, "description": text[status]} for status in statuses}
