"""Ratings and comparisons: the judgements that training turns into adapters."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from serve.protocol import ComparisonRequest, Created, RatingRequest
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])


@router.post("/ratings", status_code=201, response_model=Created)
async def create_rating(req: RatingRequest, services: ServicesDep) -> Created:
    """Thumbs up (1) or down (-1) on an answer, by its completion id."""
    await services.exchange_log.flush()  # an answer that just finished must be findable
    rating_id = await run_in_threadpool(
        services.store.add_rating, req.completion_id, req.value, req.reasons, req.comment, req.rater
    )
    return Created(id=rating_id, object="feedback.rating")


@router.post("/comparisons", status_code=201, response_model=Created)
async def create_comparison(req: ComparisonRequest, services: ServicesDep) -> Created:
    """Which of two answers to the same messages is better: a, b, tie or both_bad."""
    await services.exchange_log.flush()
    a, b = req.completion_ids
    comparison_id = await run_in_threadpool(
        services.store.add_comparison, a, b, req.winner, req.rater, req.source
    )
    return Created(id=comparison_id, object="feedback.comparison")
