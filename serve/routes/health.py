"""Liveness with the engine's state, and Prometheus metrics."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from serve.protocol import HealthStatus
from serve.services import ServicesDep

router = APIRouter(tags=["health"])


@router.get(
    "/health",
    response_model=HealthStatus,
    responses={503: {"model": HealthStatus, "description": "the engine is not answering"}},
)
async def health(services: ServicesDep) -> JSONResponse:
    """200 while the engine answers, else 503 with the same body (for load balancers)."""
    ready = await services.engine.healthy()
    body = {
        "status": "ok" if ready else "unavailable",
        "engine": services.engine.describe(),
        "base_model": services.settings.served_model_name,
        "adapters_loaded": sorted(services.registry.loaded),
        "exchange_log_queue": services.exchange_log.queue.qsize(),
    }
    return JSONResponse(body, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse)
async def metrics(services: ServicesDep) -> Response:
    """Prometheus text: requests, latency, tokens, per-model counts, adapter loads, log queue."""
    services.metrics.engine_up.set(1 if await services.engine.healthy() else 0)
    return Response(services.metrics.render(), media_type=CONTENT_TYPE_LATEST)
