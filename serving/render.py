"""JSON serialisation of responses: done once, with the standard library's C encoder."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response

_COMPACT = (",", ":")


def dumps(payload: Any) -> bytes:
    """Compact UTF-8 JSON. Text with lone surrogates (valid in JSON input, not encodable as
    UTF-8) is echoed back with \\u escapes instead of failing."""
    try:
        return json.dumps(payload, ensure_ascii=False, separators=_COMPACT).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(payload, separators=_COMPACT).encode("ascii")


def json_response(
    payload: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return Response(dumps(payload), status_code, headers, media_type="application/json")
