"""Request and response bodies of the flywheel routes (the OpenAI ones are relayed as they are)."""

from __future__ import annotations

import json
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from feedback.store import REASONS
from feedback.training_rows import Filters

ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# The largest id: every JSON client reads it exactly (2^53 - 1, a float's integers), and SQLite
# stores it (a number over its 2^63 - 1 raised OverflowError: a 500).
ROW_ID_MAX = 2**53 - 1
RowId = Annotated[int, Field(ge=1, le=ROW_ID_MAX)]


def _since(value: str | None) -> str | None:
    """An ISO 8601 time in the store's form, checked where the request is read (400 `since`).

    Checked here, not deep in a query: the leaderboard compared the raw text with stored
    times (so an offset, or any garbage, filtered silently), and a time that leaves the
    calendar once moved to UTC (year 1 at +01:00) raised OverflowError.
    """
    if value is None:
        return None
    if not value.strip():
        raise ValueError("since is empty; leave it out for no limit")
    try:
        return Filters.parse(since=value).since
    except OverflowError:
        raise ValueError(f"since={value!r} is outside the years 1-9999 in UTC") from None


# `since` of the export and the leaderboard.
Since = Annotated[str | None, AfterValidator(_since)]


class FlywheelModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingRequest(FlywheelModel):
    completion_id: str = Field(min_length=1, max_length=200, description="the `id` of an answer")
    value: Literal[1, -1] = Field(description="1 thumbs up, -1 thumbs down")
    reasons: list[Literal[REASONS]] | None = Field(default=None, max_length=20)
    comment: str | None = Field(default=None, max_length=10_000)
    rater: str | None = Field(default=None, max_length=200)


class EditRequest(FlywheelModel):
    completion_id: str = Field(min_length=1, max_length=200, description="the answer corrected")
    content: str = Field(
        min_length=1, max_length=100_000, description="what the answer should have been"
    )
    rater: str | None = Field(default=None, max_length=200)


class ComparisonRequest(FlywheelModel):
    completion_ids: list[str] = Field(
        min_length=2,
        max_length=2,
        description="[a, b]: two different answers to the same messages",
        json_schema_extra={"uniqueItems": True},
    )
    winner: Literal["a", "b", "tie", "both_bad"]
    rater: str | None = Field(default=None, max_length=200)
    source: Literal["ui", "api", "arena"] = "api"

    @field_validator("completion_ids")
    @classmethod
    def _different(cls, ids: list[str]) -> list[str]:
        if len(set(ids)) != len(ids):
            raise ValueError("a comparison needs two different completions")
        return ids


class Created(BaseModel):
    id: int
    object: str


class AdapterRequest(FlywheelModel):
    name: str = Field(pattern=ADAPTER_NAME_PATTERN, description="letters, digits, _ . -")
    path: str = Field(min_length=1, description="a PEFT LoRA folder on the gateway's machine")
    parent: str | None = None
    job_id: RowId | None = None
    dataset_hash: str | None = None
    hyperparameters: dict | None = None
    metrics: dict | None = None


class AdapterInfo(BaseModel):
    name: str
    version: int
    engine_name: str
    base_model: str
    path: str
    sha256: str
    status: str
    parent: str | None = None
    job_id: int | None = None
    dataset_hash: str | None = None
    hyperparameters: dict | None = None
    metrics: dict | None = None
    created_at: str

    @field_validator("hyperparameters", "metrics", mode="before")
    @classmethod
    def _json(cls, value):
        """The store keeps these as JSON text."""
        return json.loads(value) if isinstance(value, str) else value


class PromoteRequest(FlywheelModel):
    version: int | None = Field(
        default=None, ge=1, le=ROW_ID_MAX, description="default: the newest version"
    )


class RegistryChange(BaseModel):
    live: str | None = None
    previous: str | None = None
    retired: str | list[str] | None = None


# -- arena -----------------------------------------------------------------------------------


class ChatMessage(FlywheelModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=100_000)


class BattleSampling(FlywheelModel):
    """Both sides are sampled with the same settings, so only the models differ."""

    stream: bool = False
    max_tokens: int = Field(default=256, ge=1, le=4096)
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=1.0, gt=0, le=1)
    rater: str | None = Field(default=None, max_length=200)

    def engine_params(self) -> dict:
        return self.model_dump(include={"max_tokens", "temperature", "top_p"})


class BattleRequest(BattleSampling):
    messages: list[ChatMessage] = Field(min_length=1, max_length=200)
    models: list[str] | None = Field(
        default=None,
        min_length=2,
        max_length=2,
        description="two model names to pit against each other (default: the arena picks)",
    )


class TurnRequest(BattleSampling):
    messages: list[ChatMessage] = Field(
        min_length=1, max_length=20, description="the next message(s), sent to both sides"
    )


class BattleResponseText(BaseModel):
    text: str
    completion_id: str
    names_model: bool = Field(description="the answer names a model: it may reveal its side")


class Battle(BaseModel):
    battle_id: str
    object: Literal["arena.battle"] = "arena.battle"
    status: str
    turns: int
    responses: list[BattleResponseText]


class VoteRequest(FlywheelModel):
    winner: Literal["a", "b", "tie", "both_bad"]
    rater: str | None = Field(default=None, max_length=200)


class VoteResult(BaseModel):
    battle_id: str
    winner: str
    models: dict[str, str] = Field(description="`{a: model, b: model}`, revealed by the vote")
    comparison_id: int | None = None


class LeaderboardRow(BaseModel):
    model: str
    status: str = Field(description="base, live, candidate or retired")
    rating: float
    ci_low: float
    ci_high: float
    rank: int
    battles: int
    wins: int
    losses: int
    ties: int = Field(description="ties and both-bad votes: half a win each")
    win_rate: float
    raters: int = Field(
        default=0, description="different raters who voted in its battles (anonymous: one)"
    )


class Leaderboard(BaseModel):
    object: Literal["list"] = "list"
    battles: int
    data: list[LeaderboardRow]


# -- training jobs ---------------------------------------------------------------------------


class TrainJobRequest(FlywheelModel):
    method: Literal["dpo", "kto", "reward", "sft"]
    name: str | None = Field(
        default=None,
        pattern=ADAPTER_NAME_PATTERN,
        description="adapter name (default: method-jobN)",
    )
    base: str | None = Field(
        default=None,
        max_length=200,
        description="start from: base (default), live, or an adapter name to continue training "
        "(a reward job: base or live, the newest reward model); continuing trains on the "
        "judgements made since the continued model was trained",
    )
    params: dict[str, str | int | float | bool | None] = Field(
        default_factory=dict,
        max_length=64,
        description="hyperparameters by name, as `flywheel train --help` lists them",
    )
    synthetic_pairs: int = Field(
        default=0,
        ge=0,
        le=10_000,
        description="dpo: extra best-of-n pairs scored by the newest reward model",
    )
    samples: int | None = Field(
        default=None,
        ge=0,
        le=64,
        description="held-out prompts answered by base and tuned model after training, saved "
        "with the adapter as samples.json (default: 4; 0: none, the adapter answers sooner)",
    )


class TrainJob(BaseModel):
    id: int
    object: Literal["train.job"] = "train.job"
    method: str
    status: str = Field(description="queued, running, succeeded, failed or cancelled")
    step: int | None = None
    total_steps: int | None = None
    config: dict
    error: str | None = None
    adapter: str | None = Field(default=None, description="the adapter version it produced")
    created_at: str
    finished_at: str | None = None
    metrics: list[dict] | None = Field(default=None, description="every logged row, in order")
    log_tail: list[str] | None = None


# -- the loop's promotion gate ---------------------------------------------------------------


class DecisionRequest(FlywheelModel):
    candidate: str = Field(min_length=1, max_length=200, description="an adapter version, name@N")
    action: Literal["promote", "retire"]
    reason: str = Field(min_length=1, max_length=2000)
    evidence: dict = Field(default_factory=dict)


class DecisionInfo(BaseModel):
    id: int
    candidate: str
    incumbent: str
    action: str
    reason: str
    evidence: dict
    created_at: str


# -- documented shapes of what the gateway relays or reports -----------------------------------


class OpenModel(BaseModel):
    """The fields flywheel relies on; the engine's others are relayed as they are."""

    model_config = ConfigDict(extra="allow")


class Completion(OpenModel):
    """A chat or plain completion as the engine answers it."""

    id: str = Field(description="the handle for feedback (`completion_id`)")
    object: str
    created: int
    model: str
    choices: list[dict]
    usage: dict | None = None


class ModelCard(OpenModel):
    id: str
    object: str = "model"
    created: int | None = None
    owned_by: str | None = None
    parent: str | None = Field(default=None, description="the base model, for an adapter")


class ModelList(OpenModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class EngineState(BaseModel):
    state: str = Field(description="starting, ready, restarting, failed, stopped or external")
    url: str
    supervised: bool
    pid: int | None
    dtype: str | None = Field(
        default=None,
        description="what the supervised engine computes in (bfloat16, float16, float32); "
        "null for an external engine",
    )
    restarts: int
    uptime_s: float | None


class HealthStatus(BaseModel):
    status: Literal["ok", "unavailable"]
    engine: EngineState
    base_model: str
    adapters_loaded: list[str]
    exchange_log_queue: int


class BattleState(BaseModel):
    battle_id: str
    object: Literal["arena.battle"] = "arena.battle"
    status: str = Field(description="generating, ready, voted or failed")
    turns: int
    histories: dict[str, list[dict]] = Field(description="`{a: messages, b: messages}`")
    winner: str | None = Field(default=None, description="once voted")
    models: dict[str, str] | None = Field(default=None, description="once voted")
