"""Admin endpoints (admin key): model reload."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serving.auth import require_admin_key
from serving.dependencies import ServiceDep
from serving.routers._responses import errors
from serving.schemas import ModelVersion, ReloadResponse

router = APIRouter(prefix="/v1/admin", tags=["admin"], dependencies=[Depends(require_admin_key)])


@router.post("/reload", response_model=ReloadResponse, responses=errors(401, 403, 409))
async def reload(service: ServiceDep) -> ReloadResponse:
    """Load, check and warm the newest release, then swap it in atomically.

    A missing or invalid release is refused (409 `model_invalid`) and the running model keeps
    serving; requests already queued finish on the model they were admitted with.
    """
    engine, previous = await service.reload()
    return ReloadResponse(
        model_version=ModelVersion(text=engine.version, image=service.images.version),
        previous=previous,
        folder=str(engine.folder),
    )
