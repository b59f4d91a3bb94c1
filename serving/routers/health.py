"""Liveness, readiness and Prometheus metrics (no API key needed)."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import Response

from serving.dependencies import ServiceDep
from serving.errors import ApiError
from serving.routers._responses import errors
from serving.schemas import Health, ModelVersion, Readiness

router = APIRouter(tags=["operations"])


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is alive (answers even while the model loads or is missing)."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Readiness, responses=errors(503))
async def readyz(service: ServiceDep) -> dict[str, object]:
    """Ready once a model is loaded and warm; 503 with the reason until then."""
    engine = service.engine
    if engine is None:
        raise ApiError(503, "not_ready", service.reason)
    version = ModelVersion(text=engine.version, image=service.images.version)
    return {"status": "ready", "model_version": version}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
)
async def metrics(service: ServiceDep) -> Response:
    """Prometheus text format."""
    return Response(service.metrics.render(), media_type=service.metrics.content_type)
