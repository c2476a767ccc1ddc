"""Training data out and in: `GET /v1/feedback/export`, `POST /v1/feedback/import` (admin).

Export rows hold only TRL's columns; what describes them travels in headers
(`X-Flywheel-Export-Schema`, `X-Flywheel-Snapshot`, …) and, for Parquet, in the file's metadata.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from feedback.export_files import MEDIA_TYPES, jsonl_lines, parquet_bytes
from feedback.exports import DEFAULT_EVAL_FRACTION, SOURCES, Export, export_rows
from feedback.imports import ImportRejected, import_bytes
from serve.errors import APIError, BadRequest, error_responses
from serve.protocol import Since
from serve.services import ServicesDep

router = APIRouter(prefix="/v1/feedback", tags=["feedback"])

MAX_IMPORT_BYTES = 512 * 1024 * 1024  # a whole file is checked before anything is stored

Format = Literal["dpo", "kto", "reward", "sft"]
FORMAT_HELP = (
    "dpo: prompt, chosen, rejected (DPOTrainer) · reward: the same pairs (RewardTrainer) · "
    "kto: prompt, completion, label (KTOTrainer) · sft: messages (SFTTrainer)"
)


class InvalidRows(APIError):
    """An import file with malformed rows: nothing was stored."""

    status, type, code = 422, "invalid_request_error", "invalid_rows"


class TooLarge(APIError):
    status, type, code = 413, "invalid_request_error", "file_too_large"


class ImportResult(BaseModel):
    object: str = "feedback.import"
    format: str
    rows: int
    exchanges: int
    comparisons: int
    ratings: int
    duplicates: int


def export_headers(export: Export, kind: str) -> dict[str, str]:
    meta = export.metadata()
    headers = {
        "X-Flywheel-Export-Schema": meta["schema"],
        "X-Flywheel-Snapshot": meta["snapshot"],
        "X-Flywheel-Format": meta["format"],
        "X-Flywheel-Split": meta["split"],
        "X-Flywheel-Rows": meta["rows"],
        "X-Flywheel-Counts": meta["counts"],
        "Content-Disposition": f'attachment; filename="{export.filename(kind)}"',
    }
    if "kto_weights" in meta:
        headers["X-Flywheel-Kto-Weights"] = meta["kto_weights"]
    return headers


FILE_CONTENT = {
    MEDIA_TYPES["jsonl"]: {"schema": {"type": "string"}},
    MEDIA_TYPES["parquet"]: {"schema": {"type": "string", "format": "binary"}},
}


@router.get("/export", response_class=Response, responses={200: {"content": FILE_CONTENT}})
async def export_dataset(
    services: ServicesDep,
    fmt: Annotated[Format, Query(alias="format", description=FORMAT_HELP)],
    split: Annotated[
        Literal["train", "eval", "all"], Query(description="by a hash of the prompt")
    ] = "all",
    since: Annotated[
        Since,
        Query(
            description="ISO 8601 (a date, or a date and time): judgements made from then on",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    model: Annotated[
        str | None, Query(description="answers of this model (requested or engine name)")
    ] = None,
    rater: Annotated[str | None, Query(description="one rater's judgements")] = None,
    kind: Annotated[Literal["jsonl", "parquet"], Query(alias="as")] = "jsonl",
    eval_fraction: Annotated[float, Query(ge=0, le=1)] = DEFAULT_EVAL_FRACTION,
) -> Response:
    """Training rows in the exact columns TRL's trainers take; JSON Lines or Parquet."""
    await services.exchange_log.flush()  # answers that just finished may be judged already
    try:
        export = await run_in_threadpool(
            export_rows,
            services.store,
            fmt,
            split=split,
            since=since,
            model=model,
            rater=rater,
            eval_fraction=eval_fraction,
        )
    except ValueError as exc:  # `since`, which its type has checked already
        raise BadRequest(str(exc), param="since") from None
    headers = export_headers(export, kind)
    if not export.rows:
        headers["X-Flywheel-Hint"] = f"no rows yet: {SOURCES[fmt]}"
    if kind == "parquet":
        body = await run_in_threadpool(parquet_bytes, export)
        return Response(body, media_type=MEDIA_TYPES["parquet"], headers=headers)
    return StreamingResponse(
        jsonl_lines(export.rows), media_type=MEDIA_TYPES["jsonl"], headers=headers
    )


@router.post(
    "/import",
    status_code=201,
    response_model=ImportResult,
    responses=error_responses(413, 422),
    # Read as bytes (Parquet is told by its magic, else JSON Lines), whatever the declared type.
    openapi_extra={"requestBody": {"required": True, "content": FILE_CONTENT}},
)
async def import_dataset(
    request: Request,
    services: ServicesDep,
    fmt: Annotated[Format, Query(alias="format", description=FORMAT_HELP)],
    rater: Annotated[
        str, Query(max_length=200, description="recorded as the rater of every row")
    ] = "import",
) -> ImportResult:
    """A JSON Lines or Parquet body in an export format, stored all-or-nothing."""
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_IMPORT_BYTES:
            raise TooLarge(
                f"the file is over {MAX_IMPORT_BYTES >> 20} MiB; split it, "
                "or run `flywheel import FILE` on the gateway's machine"
            )
        chunks.append(chunk)
    try:
        report = await run_in_threadpool(
            import_bytes, services.store, fmt, b"".join(chunks), rater=rater
        )
    except ImportRejected as exc:
        raise InvalidRows(str(exc)) from None
    return ImportResult(**report.to_dict())
