"""JSON logs, one object a line; message text appears only with QUNGUARD_LOG_TEXT=1.

Hand-written rather than python-json-logger: it is one small formatter, and this one also
survives text that cannot be encoded (lone surrogates from JSON input).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from starlette.types import ASGIApp, Scope

from serving.observe import ResponseObserver

# Attributes every LogRecord has; anything else on a record came from `extra=`.
_RECORD_FIELDS = frozenset(vars(logging.makeLogRecord({}))) | {"message", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_FIELDS:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        line = json.dumps(entry, ensure_ascii=False, default=str)
        try:
            line.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: escape them rather than lose the line
            line = json.dumps(entry, default=str)
        return line


def log_config(level: str = "info") -> dict[str, Any]:
    """logging.dictConfig for the service and uvicorn (whose access log we replace)."""
    level = level.upper()
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {
            "stdout": {
                "class": "logging.StreamHandler",
                "formatter": "json",
                "stream": "ext://sys.stdout",
            }
        },
        "loggers": {
            "qunguard": {"handlers": ["stdout"], "level": level, "propagate": False},
            "uvicorn": {"handlers": ["stdout"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
        },
    }


class AccessLog(ResponseObserver):
    """One JSON line per request (QUNGUARD_ACCESS_LOG=1): method, route, status, duration."""

    def __init__(self, app: ASGIApp) -> None:
        super().__init__(app)
        self.log = logging.getLogger("qunguard.access")

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        self.log.info(
            "request",
            extra={
                "method": scope["method"],
                "path": getattr(route, "path", None) or "unmatched",
                "status": status,
                "ms": round(seconds * 1000, 2),
            },
        )
