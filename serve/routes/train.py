"""Training jobs over HTTP: start (admin), watch, cancel (admin). Each job is a child process."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter
from fastapi import Path as PathParam
from starlette.concurrency import run_in_threadpool

from serve.errors import NotFound, error_responses
from serve.protocol import ROW_ID_MAX, TrainJob, TrainJobRequest
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/train", tags=["training"])

LOG_TAIL = 30
JobId = Annotated[int, PathParam(ge=1, le=ROW_ID_MAX, description="a job's id")]


def _job_or_404(services, job_id: int) -> dict:
    job = services.store.job(job_id)
    if job is None:
        raise NotFound(f"no training job {job_id}; GET /v1/train/jobs lists them")
    return job


def _log_tail(path: str | None) -> list[str]:
    if not path or not Path(path).is_file():
        return []
    lines = Path(path).read_text(errors="replace").replace("\r", "\n").splitlines()
    return [line for line in lines if line.strip()][-LOG_TAIL:]


@router.post("/jobs", status_code=201, response_model=TrainJob, responses=error_responses(404, 409))
async def start_job(req: TrainJobRequest, services: ServicesDep) -> dict:
    """Train an adapter from the stored judgements; it is registered as a candidate when done."""
    if req.base not in (None, "base"):
        services.registry.resolve(req.base)  # 404 for an unknown model, before any work starts
    job_id = await run_in_threadpool(
        services.jobs.submit,
        req.method,
        req.name,
        req.base,
        dict(req.params),
        req.synthetic_pairs,
        req.samples,
    )
    return await run_in_threadpool(_job_or_404, services, job_id)


@router.get("/jobs", response_model=list[TrainJob])
async def list_jobs(services: ServicesDep) -> list[dict]:
    """The newest 50 jobs, without their metrics history."""
    return await run_in_threadpool(services.store.jobs)


@router.get("/jobs/{job_id}", response_model=TrainJob, responses=error_responses(404))
async def get_job(job_id: JobId, services: ServicesDep) -> dict:
    """One job: progress, every logged metrics row (for a live loss curve), the log's tail."""
    job = await run_in_threadpool(_job_or_404, services, job_id)
    return {**job, "log_tail": await run_in_threadpool(_log_tail, job.get("log_path"))}


@router.post("/jobs/{job_id}/cancel", response_model=TrainJob, responses=error_responses(404, 409))
async def cancel_job(job_id: JobId, services: ServicesDep) -> dict:
    """Stop a running job; it ends `cancelled` and leaves no adapter behind."""
    await run_in_threadpool(services.jobs.cancel, job_id)
    return await run_in_threadpool(_job_or_404, services, job_id)
