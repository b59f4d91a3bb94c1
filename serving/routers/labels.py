"""GET /v1/labels: the labels, their descriptions and the serving model's thresholds."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from serving.auth import require_api_key
from serving.dependencies import ServiceDep
from serving.routers._responses import errors
from serving.schemas import LabelsResponse, labels_response

router = APIRouter(prefix="/v1", tags=["labels"], dependencies=[Depends(require_api_key)])


@router.get("/labels", response_model=LabelsResponse, responses=errors(401))
async def labels(service: ServiceDep) -> LabelsResponse:
    engine = service.engine
    return labels_response(None if engine is None else engine.thresholds)
