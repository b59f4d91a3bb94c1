"""Early load shedding: when the model queue is full, refuse classify requests at the door.

The batcher refuses a request whose messages do not fit in the queue, but only after the
request went through routing, auth and validation. Under overload those refusals would eat
the event loop that accepted requests need; this middleware answers 503 before any of that
while the queue is completely full (a request that merely does not fit is still refused
later, by the batcher, once its message count is known).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.types import ASGIApp, Receive, Scope, Send

from serving.errors import ERROR_CODE_KEY
from serving.render import dumps

CLASSIFY_PATH = "/v1/classify"
_BODY = dumps({"error": {"code": "overloaded", "message": "the queue is full; retry later"}})


class LoadShedder:
    def __init__(
        self,
        app: ASGIApp,
        full: Callable[[], bool],
        retry_after_s: int,
        on_shed: Callable[[], None],
    ) -> None:
        self.app = app
        self.full = full
        self.on_shed = on_shed
        self.headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(_BODY)).encode()),
            (b"retry-after", str(retry_after_s).encode()),
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == CLASSIFY_PATH and self.full():
            scope[ERROR_CODE_KEY] = "overloaded"
            self.on_shed()
            await send({"type": "http.response.start", "status": 503, "headers": self.headers})
            await send({"type": "http.response.body", "body": _BODY})
            return
        await self.app(scope, receive, send)
