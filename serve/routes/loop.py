"""The promotion gate's decisions: carried out and recorded in one place, visible to everyone."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serve.errors import UnknownModel, error_responses
from serve.protocol import DecisionInfo, DecisionRequest
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/loop", tags=["loop"])


@router.get("/decisions", response_model=list[DecisionInfo])
async def list_decisions(services: ServicesDep) -> list[dict]:
    """Every promote/retire decision, newest first, with its reason and the evidence."""
    return await run_in_threadpool(services.store.decisions)


@router.post(
    "/decisions",
    status_code=201,
    response_model=DecisionInfo,
    responses=error_responses(404, 409),
)
async def decide(req: DecisionRequest, services: ServicesDep) -> dict:
    """Promote or retire a candidate version (admin), recording why."""
    row = await run_in_threadpool(services.store.adapter, req.candidate)
    if row is None or row["status"] == "retired":
        raise UnknownModel(f"no registered candidate {req.candidate!r}", param="candidate")
    incumbent = services.registry.resolve("live")
    if req.action == "promote":
        await services.registry.promote(row["name"], row["version"])
    else:
        await services.registry.delete(req.candidate)
    return await run_in_threadpool(
        services.store.add_decision,
        req.candidate,
        incumbent,
        req.action,
        req.reason,
        req.evidence,
    )
