"""A pure ASGI middleware base that sees each HTTP response's status and duration."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class ResponseObserver:
    """Calls `observe(scope, status, seconds)` once per HTTP request, after it is answered.

    Pure ASGI rather than Starlette's BaseHTTPMiddleware, which costs far more per request.
    A request that raises is observed with status 500.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            self.observe(scope, status, time.perf_counter() - started)

    def observe(self, scope: Scope, status: int, seconds: float) -> None:
        raise NotImplementedError
