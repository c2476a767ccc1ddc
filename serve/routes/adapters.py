"""The adapter registry over HTTP. Changing routes are admin-only once API keys exist."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serve.errors import error_responses
from serve.protocol import AdapterInfo, AdapterRequest, PromoteRequest, RegistryChange
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/adapters", tags=["adapters"])


@router.get("", response_model=list[AdapterInfo])
async def list_adapters(services: ServicesDep, include_retired: bool = False) -> list[dict]:
    """Every registered version, oldest first, with its status (candidate, live, retired)."""
    return await run_in_threadpool(services.store.adapters, include_retired)


@router.post("", status_code=201, response_model=AdapterInfo, responses=error_responses(422, 503))
async def register_adapter(req: AdapterRequest, services: ServicesDep) -> dict:
    """Validate a LoRA folder, copy it into the managed store and hot-load it as a candidate."""
    lineage = req.model_dump(exclude={"name", "path"}, exclude_none=True)
    return await services.registry.register(req.name, Path(req.path), **lineage)


@router.post("/{name}/promote", response_model=RegistryChange, responses=error_responses(404, 409))
async def promote_adapter(
    name: str, services: ServicesDep, req: PromoteRequest | None = None
) -> dict:
    """Make a version (default: the newest) the `live` model, atomically."""
    return await services.registry.promote(name, req.version if req else None)


@router.post("/{name}/rollback", response_model=RegistryChange, responses=error_responses(404, 409))
async def rollback_adapter(name: str, services: ServicesDep) -> dict:
    """Put back the version that was live before this one, and retire this one."""
    return await services.registry.rollback(name)


@router.delete("/{name}", response_model=RegistryChange, responses=error_responses(404, 409))
async def delete_adapter(name: str, services: ServicesDep) -> dict:
    """Retire `name` (every version) or `name@N` and unload it; the live one is refused."""
    return {"retired": await services.registry.delete(name)}
