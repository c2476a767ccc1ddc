"""The UI's view of the gateway: the OpenAI client for chat, plain HTTP for flywheel routes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
from openai import OpenAI


class GatewayError(Exception):
    """A gateway error, carrying the message of its OpenAI-shaped body."""


@dataclass
class Delta:
    completion_id: str
    text: str


class GatewayClient:
    def __init__(self, api_base: str, api_key: str = "local"):
        self.api_base = api_base.rstrip("/")
        self.openai = OpenAI(base_url=self.api_base, api_key=api_key, max_retries=0)
        self.http = httpx.Client(base_url=self.api_base, timeout=30)

    def _post(self, path: str, payload: dict) -> dict:
        resp = self.http.post(path, json=payload)
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text
            raise GatewayError(message)
        return resp.json()

    def models(self) -> list[str]:
        """Served names: the base first, then adapters (by name and by version)."""
        models = self.openai.models.list().data
        base = [m.id for m in models if not getattr(m, "parent", None)]
        return base + sorted(m.id for m in models if getattr(m, "parent", None))

    def stream_chat(self, model: str, messages: list[dict], **params) -> Iterator[Delta]:
        stream = self.openai.chat.completions.create(
            model=model, messages=messages, stream=True, **params
        )
        for chunk in stream:
            text = chunk.choices[0].delta.content if chunk.choices else None
            yield Delta(chunk.id, text or "")

    def rate(self, completion_id: str, value: int) -> dict:
        return self._post("/feedback/ratings", {"completion_id": completion_id, "value": value})

    def compare(self, completion_a: str, completion_b: str, winner: str) -> dict:
        payload = {"completion_ids": [completion_a, completion_b], "winner": winner, "source": "ui"}
        return self._post("/feedback/comparisons", payload)
