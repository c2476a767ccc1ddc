"""The adapter registry over HTTP: list and register (promotion arrives with the serving issue)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter

from serve.protocol import AdapterInfo, AdapterRequest
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/adapters", tags=["adapters"])


@router.get("", response_model=list[AdapterInfo])
async def list_adapters(services: ServicesDep) -> list[dict]:
    return services.store.adapters()


@router.post("", status_code=201, response_model=AdapterInfo)
async def register_adapter(req: AdapterRequest, services: ServicesDep) -> dict:
    """Validate a LoRA folder, copy it into the managed store and hot-load it as a candidate."""
    lineage = req.model_dump(exclude={"name", "path"}, exclude_none=True)
    return await services.registry.register(req.name, Path(req.path), **lineage)
