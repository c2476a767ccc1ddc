"""Request and response bodies of the flywheel routes (the OpenAI ones are relayed as they are)."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from feedback.store import REASONS

ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class FlywheelModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingRequest(FlywheelModel):
    completion_id: str = Field(min_length=1, max_length=200, description="the `id` of an answer")
    value: Literal[1, -1] = Field(description="1 thumbs up, -1 thumbs down")
    reasons: list[str] | None = Field(
        default=None, max_length=20, description=f"any of: {', '.join(REASONS)}"
    )
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
        min_length=2, max_length=2, description="[a, b]: two answers to the same messages"
    )
    winner: Literal["a", "b", "tie", "both_bad"]
    rater: str | None = Field(default=None, max_length=200)
    source: Literal["ui", "api", "arena"] = "api"


class Created(BaseModel):
    id: int
    object: str


class AdapterRequest(FlywheelModel):
    name: str = Field(pattern=ADAPTER_NAME_PATTERN, description="letters, digits, _ . -")
    path: str = Field(min_length=1, description="a PEFT LoRA folder on the gateway's machine")
    parent: str | None = None
    job_id: int | None = None
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
    version: int | None = Field(default=None, ge=1, description="default: the newest version")


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
    win_rate: float


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
        description="start from: base (default), live, or an adapter name to continue training",
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
