"""Ratings and comparisons: the judgements that training turns into adapters."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool

from feedback.raters import rater_stats
from serve.errors import error_responses
from serve.protocol import ComparisonRequest, Created, EditRequest, RatingRequest
from serve.routes.openai import api_key_id
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


def rater_for(request: Request, given: str | None) -> str | None:
    """Who judged: the name a client gives, else its API key, else nobody in particular."""
    if given:
        return given
    key_id = api_key_id(request)
    return f"key:{key_id}" if key_id is not None else None


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
