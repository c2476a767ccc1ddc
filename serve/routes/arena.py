"""The anonymous arena over HTTP: battles, one vote each, and the leaderboard.

Responses before the vote carry no model name: answers are referred to as side a and b, and
the engine's own chunks (which name the model) are never relayed.
"""

from __future__ import annotations

import random
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import StreamingResponse
from starlette.concurrency import run_in_threadpool

from feedback.arena import SETTLED_AFTER, Arena, choose_pair
from feedback.leaderboard import Standing
from serve.battle_streams import SideAnswer, generate_pair
from serve.client_gone import unless_client_leaves
from serve.errors import APIError, Conflict, RateLimited, error_body, error_responses
from serve.json_body import check_generation_limits
from serve.protocol import (
    Battle,
    BattleRequest,
    BattleResponseText,
    BattleSampling,
    BattleState,
    Leaderboard,
    LeaderboardRow,
    Since,
    TurnRequest,
    VoteRequest,
    VoteResult,
)
from serve.routes.feedback import rater_for
from serve.routes.openai import api_key_id
from serve.services import Services, ServicesDep
from serve.sse import EVENT_STREAM, encode_event

router = APIRouter(prefix="/v1/arena", tags=["arena"])

_rng = random.SystemRandom()  # pairing and side order must not be predictable

# With `stream: true`, SSE events; an engine failure mid-stream is an error event, else 502.
BATTLE_RESPONSES = {
    200: {"content": EVENT_STREAM},
    **error_responses(404, 409, 502, 503),
}


def _served_models(services: Services) -> list[str]:
    loaded = services.registry.loaded
    adapters = [a["engine_name"] for a in services.store.adapters() if a["engine_name"] in loaded]
    return [services.registry.base_name, *adapters]


def _unsettled(services: Services, incumbent: str) -> list[str]:
    """Candidates whose rating cannot yet be told apart from the live model's."""
    standings = {s.model: s for s in services.arena.standings(anchor=services.registry.base_name)}
    live = standings.get(incumbent)
    unsettled = []
    for adapter in services.store.adapters():
        if adapter["status"] != "candidate":
            continue
        mine = standings.get(adapter["engine_name"])
        few = mine is None or mine.battles < SETTLED_AFTER or live is None
        if few or (mine.ci_low <= live.ci_high and live.ci_low <= mine.ci_high):
            unsettled.append(adapter["engine_name"])
    return unsettled


def _pick_models(services: Services, requested: list[str] | None) -> tuple[str, str]:
    if requested:
        a, b = (services.registry.resolve_served(name) for name in requested)
        if a == b:
            raise Conflict("the two models are the same version; name two different ones")
        return (a, b) if _rng.random() < 0.5 else (b, a)
    served = _served_models(services)
    if len(served) < 2:  # a state, not a bad request: registering an adapter changes the answer
        raise Conflict(
            "the arena needs at least two served models: register an adapter "
            "(flywheel train, or POST /v1/adapters)"
        )
    incumbent = services.registry.resolve("live")
    unsettled = _unsettled(services, incumbent)
    return choose_pair(
        served,
        services.arena.battles_per_model(),
        unsettled,
        incumbent,
        _rng,
    )


def _model_names(services: Services) -> re.Pattern:
    """Any served model's name as a whole word (FastChat #1210: a model that names itself
    gives its side away)."""
    names = {services.registry.base_name, "smollm"}
    names |= {a["name"] for a in services.store.adapters()}
    words = "|".join(re.escape(n.lower()) for n in sorted(names) if n)
    return re.compile(rf"(?<![\w-])(?:{words})(?![\w-])")


def _battle_body(
    battle_id: str, answers: dict[str, SideAnswer], turns: int, services: Services
) -> Battle:
    names = _model_names(services)
    return Battle(
        battle_id=battle_id,
        status="ready",
        turns=turns,
        responses=[
            BattleResponseText(
                text=answers[s].completion,
                completion_id=answers[s].id,
                names_model=bool(names.search(answers[s].completion.lower())),
            )
            for s in ("a", "b")
        ],
    )


async def _run_turn(
    services: Services,
    battle: dict[str, Any],
    req: BattleSampling,
    key_id: int | None,
    unsaved: bool = False,
):
    """Generate both sides; stream them as SSE events or answer once both are done.

    `unsaved`: a new battle, stored once the engine has begun to answer it, so a prompt the
    engine refuses (too long, malformed) is never written."""
    arena: Arena = services.arena
    pieces = generate_pair(
        services,
        (battle["model_a"], battle["model_b"]),
        (battle["history_a"], battle["history_b"]),
        req.engine_params(),
        key_id,
    )

    async def saved_first():
        nonlocal unsaved
        try:
            async for item in pieces:
                if unsaved:
                    await run_in_threadpool(arena.save, battle)
                    unsaved = False
                yield item
        finally:
            await pieces.aclose()  # the client left: both engine requests end now

    pair = saved_first()

    async def finish(answers: dict[str, SideAnswer]) -> Battle:
        await run_in_threadpool(
            arena.record_answers,
            battle["id"],
            {"id": answers["a"].id, "completion": answers["a"].completion},
            {"id": answers["b"].id, "completion": answers["b"].completion},
        )
        return await run_in_threadpool(
            _battle_body, battle["id"], answers, battle["turns"] + 1, services
        )

    if not req.stream:
        try:
            async for item in pair:
                if isinstance(item, dict):
                    return await finish(item)
        finally:
            await pair.aclose()
            arena.fail(battle["id"])  # no-op once the answers are recorded
        raise APIError("the battle ended without answers")

    async def events():
        try:
            async for item in pair:
                if isinstance(item, tuple):
                    side, text = item
                    yield encode_event({"battle_id": battle["id"], "side": side, "delta": text})
                else:
                    body = await finish(item)
                    yield encode_event(body.model_dump())
                    yield encode_event("[DONE]")
        except APIError as exc:
            yield encode_event(error_body(exc.message, exc.type, code=exc.code))
        finally:
            await pair.aclose()
            arena.fail(battle["id"])  # the client left or a side failed: no vote possible

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _check_token_cap(req: BattleSampling, services: Services) -> None:
    """A battle asks the engine for `max_tokens` twice: the operator's cap holds here too. A
    number asked for over the cap is a 400, as on /v1/chat/completions; the default is cut to it."""
    cap = services.settings.max_tokens_cap
    if "max_tokens" in req.model_fields_set:
        check_generation_limits({"max_tokens": req.max_tokens}, services.settings.max_messages, cap)
    else:
        req.max_tokens = min(req.max_tokens, cap)


def _steered(req: BattleRequest) -> bool:
    """A battle whose pair or sampling the client chose rather than the arena: with
    `temperature` 0 and a pair of its choosing a key could replay prompts it knows one side wins
    (the answers' length, `max_tokens`, is the reader's choice and does not steer)."""
    defaults = BattleRequest.model_fields
    return req.models is not None or any(
        getattr(req, knob) != defaults[knob].default for knob in ("temperature", "top_p")
    )


async def _check_battle_rate(services: Services, key_id: int) -> None:
    cap = services.settings.arena_battles_per_hour
    if not cap:
        return
    started = await run_in_threadpool(services.arena.battles_in_last_hour, key_id)
    if started >= cap:
        raise RateLimited(
            f"this key has started {started} arena battles in the last hour, the limit is "
            f"{cap} (flywheel up --arena-battles-per-hour); try again later",
            retry_after=60,
        )


@router.post("/battles", response_model=Battle, responses=BATTLE_RESPONSES)
async def start_battle(req: BattleRequest, request: Request, services: ServicesDep):
    """Two served models answer the same messages; which is which stays hidden until the vote.

    With `stream: true` the answers arrive as SSE events `{battle_id, side, delta}`, paced
    equally, then one event with the whole battle, then `[DONE]`.
    """
    _check_token_cap(req, services)
    key_id = api_key_id(request)
    user_key = key_id is not None and getattr(request.state, "api_key_role", None) != "admin"
    if user_key:
        await _check_battle_rate(services, key_id)
    rater = rater_for(request, req.rater)
    # off the event loop: the pairing reads the store and may refit the leaderboard
    model_a, model_b = await run_in_threadpool(_pick_models, services, req.models)
    messages = [m.model_dump() for m in req.messages]
    counted = not (user_key and _steered(req))
    battle = services.arena.new(messages, model_a, model_b, rater, key_id, counted)
    work = _run_turn(services, battle, req, key_id, unsaved=True)
    return await unless_client_leaves(request, work)


@router.post("/battles/{battle_id}/turns", response_model=Battle, responses=BATTLE_RESPONSES)
async def continue_battle(
    battle_id: str, req: TurnRequest, request: Request, services: ServicesDep
):
    """Another turn before the vote: each side answers with its own history."""
    _check_token_cap(req, services)
    battle = await run_in_threadpool(
        services.arena.begin_turn, battle_id, [m.model_dump() for m in req.messages]
    )
    work = _run_turn(services, battle, req, api_key_id(request))
    return await unless_client_leaves(request, work)


@router.get(
    "/battles/{battle_id}",
    response_model=BattleState,
    response_model_exclude_none=True,
    responses=error_responses(404),
)
async def get_battle(battle_id: str, services: ServicesDep) -> dict:
    """A battle's state; its models only once it has been voted on."""
    battle = await run_in_threadpool(services.arena.get, battle_id)
    body = {
        "battle_id": battle["id"],
        "object": "arena.battle",
        "status": battle["status"],
        "turns": battle["turns"],
        "histories": {"a": battle["history_a"], "b": battle["history_b"]},
    }
    if battle["status"] == "voted":
        body["winner"] = battle["winner"]
        body["models"] = {"a": battle["model_a"], "b": battle["model_b"]}
    return body


@router.post(
    "/battles/{battle_id}/vote", response_model=VoteResult, responses=error_responses(404, 409)
)
async def vote(
    battle_id: str, req: VoteRequest, request: Request, services: ServicesDep
) -> VoteResult:
    """The one vote of a battle: a, b, tie or both_bad. The answer reveals both models."""
    await services.exchange_log.flush()  # the single-turn vote is stored as a comparison
    battle = await services.writes.run(
        services.arena.vote, battle_id, req.winner, rater_for(request, req.rater)
    )
    return VoteResult(
        battle_id=battle_id,
        winner=req.winner,
        models={"a": battle["model_a"], "b": battle["model_b"]},
        comparison_id=battle["comparison_id"],
    )


@router.get("/leaderboard", response_model=Leaderboard)
async def get_leaderboard(
    services: ServicesDep,
    since: Annotated[
        Since,
        Query(
            description="ISO 8601 (a date, or a date and time): only votes from then on",
            json_schema_extra={"format": "date-time"},
        ),
    ] = None,
    rounds: Annotated[int, Query(ge=10, le=1000, description="bootstrap rounds")] = 100,
) -> Leaderboard:
    """Bradley–Terry ratings (base model = 1000) with bootstrap 95 % intervals, from votes.
    Battles a user key steered (named models, its own temperature or top_p) are not counted."""
    standings: list[Standing] = await run_in_threadpool(
        services.arena.standings, since, rounds, services.registry.base_name
    )
    raters = await run_in_threadpool(services.arena.raters_per_model, since)
    adapters = await run_in_threadpool(services.store.adapters, True)
    status = {a["engine_name"]: a["status"] for a in adapters}
    status[services.registry.base_name] = "base"
    return Leaderboard(
        battles=sum(s.battles for s in standings) // 2,
        data=[
            LeaderboardRow(
                model=s.model,
                status=status.get(s.model, "retired"),
                rating=s.rating,
                ci_low=s.ci_low,
                ci_high=s.ci_high,
                rank=s.rank,
                battles=s.battles,
                wins=s.wins,
                losses=s.losses,
                ties=s.ties,
                win_rate=s.win_rate,
                raters=raters.get(s.model, 0),
            )
            for s in standings
        ],
    )
