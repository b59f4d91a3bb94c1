"""FastAPI application factory: routers per resource, middleware, error handlers, lifespan."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from serving.errors import install_error_handlers
from serving.limits import BodyLimit
from serving.logs import AccessLog
from serving.metrics import Metrics, MetricsMiddleware
from serving.policies import open_policy_engine
from serving.routers import admin, classify, groups, health, labels, reports
from serving.schemas import ClassifyRequest
from serving.service import Service
from serving.settings import Settings
from serving.shedding import LoadShedder

log = logging.getLogger("qunguard.app")

DESCRIPTION = (
    "Content moderation for Chinese group chats. The contract is shared/API.md; every error "
    'is `{"error": {"code", "message"}}`.'
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app with its own service, batcher and metrics registry.

    Settings come from `QUNGUARD_*` environment variables unless given. The model loads in
    the background once the app starts (lifespan), so `/healthz` answers at once and
    `/readyz` turns ready after warm-up.
    """
    settings = settings or Settings()
    metrics = Metrics()
    service = Service(settings, metrics)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if not settings.auth_enabled:
            log.warning("no API keys configured: the service is open (bind 127.0.0.1 only)")
        # The database (strikes, policies): tables created before the first request.
        policies = await asyncio.to_thread(open_policy_engine, settings)
        app.state.policies = policies
        app.state.store = policies.store
        await service.start(store=policies.store)  # image floods share the database
        try:
            yield
        finally:
            await service.stop()
            policies.store.close()

    app = FastAPI(
        title="qunguard",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        strict_content_type=False,  # a JSON body without Content-Type is still read as JSON
        # Prometheus covers metrics; OpenTelemetry checks cost time on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False, "operation_spans": False},
    )
    app.state.service = service
    document_models(app, ClassifyRequest)
    install_error_handlers(app)
    for module in (classify, labels, reports, admin, groups, health):
        app.include_router(module.router)
    # Added innermost first: the access log and metrics also see the early 413s and 503s.
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(
        LoadShedder,
        full=lambda: service.batcher.full,
        retry_after_s=settings.retry_after_s,
        on_shed=metrics.rejected.inc,
    )
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if settings.access_log:
        app.add_middleware(AccessLog)
    return app


def document_models(app: FastAPI, *models: type[BaseModel]) -> None:
    """Add request models that routes parse themselves (no body parameter) to the components
    of /openapi.json, where their `openapi_extra` request bodies refer to them."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            spec = build()
            schemas = spec.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                schemas.update(schema.pop("$defs", {}))
                schemas[model.__name__] = schema
            app.openapi_schema = spec
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
