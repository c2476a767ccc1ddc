"""The gateway's long-lived services, built in `create_app` and reached through `app.state`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from feedback import Store
from feedback.api_keys import ApiKeys
from feedback.arena import Arena
from serve.adapters import AdapterRegistry
from serve.config import Settings
from serve.engine import Engine
from serve.engine_client import EngineClient
from serve.exchange_log import ExchangeLogger
from serve.group_commit import GroupCommit
from serve.jobs import JobRunner
from serve.metrics import GatewayMetrics


@dataclass(kw_only=True)
class Services:
    settings: Settings
    store: Store
    keys: ApiKeys  # who may call; none active on loopback: keyless local mode
    engine: Engine
    registry: AdapterRegistry
    exchange_log: ExchangeLogger
    engine_client: EngineClient  # pooled connections to the engine, for the hot path
    metrics: GatewayMetrics
    arena: Arena
    writes: GroupCommit  # judgements, committed in groups (one fsync per batch)
    jobs: JobRunner  # training jobs as child processes


def get_services(request: Request) -> Services:
    return request.app.state.services


ServicesDep = Annotated[Services, Depends(get_services)]
