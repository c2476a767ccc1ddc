"""Ratings and comparisons: the judgements that training turns into adapters."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from feedback.raters import rater_stats
from serve.errors import Forbidden, error_responses
from serve.protocol import ComparisonRequest, Created, EditRequest, RatingRequest
from serve.routes.openai import api_key_id
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


def rater_for(request: Request, given: str | None) -> str | None:
    """Who judged. Keyless (local mode): the name the client gives, else nobody in particular.
    With keys the rater is the key: its fixed rater name, else `key:<id>`. Only an admin key
    may record a judgement under another name (an import, a rater without a key of their own);
    a user key naming another rater is refused, so no one can vote as someone else."""
    key_id = api_key_id(request)
    if key_id is None:
        return given or None
    own = getattr(request.state, "api_key_rater", None) or f"key:{key_id}"
    if not given or given == own or getattr(request.state, "api_key_role", None) == "admin":
        return given or own
    raise Forbidden(
        f"this key records judgements as {own!r}; only an admin key may record them under "
        f"another rater name ({given!r}): leave `rater` out",
        param="rater",
    )


@router.post("/ratings", status_code=201, response_model=Created, responses=error_responses(404))
async def create_rating(req: RatingRequest, request: Request, services: ServicesDep) -> Created:
    """Thumbs up (1) or down (-1) on an answer, by its completion id."""
    await services.exchange_log.flush()  # an answer that just finished must be findable
    rating_id = await services.writes.run(
        services.store.add_rating,
        req.completion_id,
        req.value,
        req.reasons,
        req.comment,
        rater_for(request, req.rater),
    )
    return Created(id=rating_id, object="feedback.rating")


@router.post(
    "/comparisons", status_code=201, response_model=Created, responses=error_responses(404)
)
async def create_comparison(
    req: ComparisonRequest, request: Request, services: ServicesDep
) -> Created:
    """Which of two answers to the same messages is better: a, b, tie or both_bad."""
    await services.exchange_log.flush()
    a, b = req.completion_ids
    comparison_id = await services.writes.run(
        services.store.add_comparison, a, b, req.winner, rater_for(request, req.rater), req.source
    )
    return Created(id=comparison_id, object="feedback.comparison")


@router.post("/edits", status_code=201, response_model=Created, responses=error_responses(404))
async def create_edit(req: EditRequest, request: Request, services: ServicesDep) -> Created:
    """What an answer should have been: an SFT example, and a DPO pair against the original."""
    await services.exchange_log.flush()
    edit_id = await services.writes.run(
        services.store.add_edit, req.completion_id, req.content, rater_for(request, req.rater)
    )
    return Created(id=edit_id, object="feedback.edit")


@router.get("/raters")
async def rater_statistics(services: ServicesDep) -> dict:
    """Judgements per rater, and how often each agrees with others who judged the same thing."""
    rows = await run_in_threadpool(rater_stats, services.store)
    return {"object": "list", "data": rows}


@router.get("/counts")
async def counts(services: ServicesDep) -> dict[str, int]:
    """How much has been collected: exchanges, ratings, comparisons, edits, battles, ..."""
    await services.exchange_log.flush()
    return await run_in_threadpool(services.store.counts)
