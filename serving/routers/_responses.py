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
        413: "Body too large, an image over 10 MiB, or too many image bytes in one request",
        415: "The body is not JSON, or an image is not JPEG, PNG, GIF or WebP",
        422: "Invalid fields, or an image that cannot be read (invalid_image, invalid_base64)",
        503: "Overloaded, no model or no image models; see Retry-After",
    }
    return {status: {"model": ErrorResponse, "description": text[status]} for status in statuses}
