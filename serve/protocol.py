"""Request and response bodies of the flywheel routes (the OpenAI ones are relayed as they are)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ADAPTER_NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class FlywheelModel(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RatingRequest(FlywheelModel):
    completion_id: str = Field(min_length=1, max_length=200, description="the `id` of an answer")
    value: Literal[1, -1] = Field(description="1 thumbs up, -1 thumbs down")
    reasons: list[str] | None = Field(default=None, max_length=20)
    comment: str | None = Field(default=None, max_length=10_000)
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
    created_at: str


class PromoteRequest(FlywheelModel):
    version: int | None = Field(default=None, ge=1, description="default: the newest version")


class RegistryChange(BaseModel):
    live: str | None = None
    previous: str | None = None
    retired: str | list[str] | None = None
