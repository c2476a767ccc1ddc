"""Liveness with the engine's state: 200 when requests can be served, 503 otherwise."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from serve.services import ServicesDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health(services: ServicesDep) -> JSONResponse:
    ready = await services.engine.healthy()
    body = {
        "status": "ok" if ready else "unavailable",
        "engine": services.engine.describe(),
        "base_model": services.settings.served_model_name,
        "adapters_loaded": sorted(services.registry.loaded),
        "exchange_log_queue": services.exchange_log.queue.qsize(),
    }
    return JSONResponse(body, status_code=200 if ready else 503)
