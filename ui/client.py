"""The UI's view of the gateway: the OpenAI client for chat, plain HTTP for flywheel routes.

Nothing here knows about Gradio; every method is one request to the gateway's public API, so
anything the page does, an API client can do too.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
from openai import OpenAI

from common.gateway_client import error_message

# A battle or an answer on a busy 2-core machine can take minutes; connecting should not.
TIMEOUT = httpx.Timeout(30, read=600)


class GatewayError(Exception):
    """A gateway error, carrying the message of its OpenAI-shaped body."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


@dataclass
class Delta:
    completion_id: str
    text: str


@dataclass
class BattleDelta:
    """Words for one side of a battle, as streamed."""

    battle_id: str
    side: str  # "a" or "b"
    text: str


@dataclass
class Export:
    filename: str
    content: bytes
    rows: int | None
    hint: str | None


def _check(resp: httpx.Response) -> httpx.Response:
    if resp.status_code >= 400:
        raise GatewayError(error_message(resp), resp.status_code)
    return resp


def sse_data(lines: Iterator[bytes]) -> Iterator[dict[str, Any]]:
    """JSON payloads of `data:` lines, up to `[DONE]`. Lines end at `\\n` only (see serve/sse)."""
    pending = b""
    for chunk in lines:
        *complete, pending = (pending + chunk).split(b"\n")
        for line in complete:
            line = line.rstrip(b"\r")
            if line == b"data: [DONE]":
                return
            if line.startswith(b"data: "):
                yield json.loads(line[6:])


class GatewayClient:
    def __init__(self, api_base: str, api_key: str = "local"):
        self.api_base = api_base.rstrip("/")
        self.openai = OpenAI(base_url=self.api_base, api_key=api_key, max_retries=0)
        self.http = httpx.Client(
            base_url=self.api_base,
            timeout=TIMEOUT,
            headers={"Authorization": f"Bearer {api_key}"},
        )

    def _get(self, path: str, **params) -> Any:
        return _check(self.http.get(path, params=params or None)).json()

    def _post(self, path: str, payload: dict | None = None) -> Any:
        return _check(self.http.post(path, json=payload)).json()

    # -- who am I ---------------------------------------------------------------------------

    def role(self) -> str:
        """ "admin", "user" or "invalid", found by asking for an admin-only route.

        `GET /v1/keys` needs an admin key: a user key gets 403, an unknown key 401; an admin
        key (or a keyless local gateway) gets past the check to whatever the route answers.
        """
        status = self.http.get("/keys").status_code
        return {401: "invalid", 403: "user"}.get(status, "admin")

    # -- chat -------------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Served names: the base first, then the aliases and the adapters."""
        models = self.openai.models.list().data
        base = [m.id for m in models if not getattr(m, "parent", None)]
        return base + sorted(m.id for m in models if getattr(m, "parent", None))

    def stream_chat(self, model: str, messages: list[dict], **params) -> Iterator[Delta]:
        """Deltas of one answer; closing the iterator closes the request (the Stop button)."""
        stream = self.openai.chat.completions.create(
            model=model, messages=messages, stream=True, **params
        )
        with stream:
            for chunk in stream:
                text = chunk.choices[0].delta.content if chunk.choices else None
                yield Delta(chunk.id, text or "")

    # -- judgements -------------------------------------------------------------------------

    def rate(
        self,
        completion_id: str,
        value: int,
        reasons: list[str] | None = None,
        comment: str | None = None,
        rater: str | None = None,
    ) -> dict:
        payload = {"completion_id": completion_id, "value": value}
        payload |= {k: v for k, v in (("reasons", reasons), ("comment", comment)) if v}
        if rater:
            payload["rater"] = rater
        return self._post("/feedback/ratings", payload)

    def compare(
        self, completion_a: str, completion_b: str, winner: str, rater: str | None = None
    ) -> dict:
        payload = {"completion_ids": [completion_a, completion_b], "winner": winner, "source": "ui"}
        if rater:
            payload["rater"] = rater
        return self._post("/feedback/comparisons", payload)

    def edit(self, completion_id: str, content: str, rater: str | None = None) -> dict:
        payload = {"completion_id": completion_id, "content": content}
        if rater:
            payload["rater"] = rater
        return self._post("/feedback/edits", payload)

    # -- arena ------------------------------------------------------------------------------

    def stream_battle(
        self, messages: list[dict], battle_id: str | None = None, **params
    ) -> Iterator[BattleDelta | dict]:
        """A new battle (or the next turn of `battle_id`): deltas, then the whole battle body."""
        path = f"/arena/battles/{battle_id}/turns" if battle_id else "/arena/battles"
        body = {"messages": messages, "stream": True, **params}
        with self.http.stream("POST", path, json=body) as resp:
            if resp.status_code >= 400:
                resp.read()
                raise GatewayError(error_message(resp), resp.status_code)
            for event in sse_data(resp.iter_bytes()):
                if "error" in event:
                    raise GatewayError(event["error"].get("message", "the battle failed"))
                if "delta" in event:
                    yield BattleDelta(event["battle_id"], event["side"], event["delta"])
                elif "responses" in event:
                    yield event

    def vote(self, battle_id: str, winner: str, rater: str | None = None) -> dict:
        payload = {"winner": winner} | ({"rater": rater} if rater else {})
        return self._post(f"/arena/battles/{battle_id}/vote", payload)

    def leaderboard(self) -> dict:
        return self._get("/arena/leaderboard")

    # -- adapters ---------------------------------------------------------------------------

    def adapters(self, include_retired: bool = False) -> list[dict]:
        return self._get("/adapters", include_retired=str(include_retired).lower())

    def promote(self, name: str, version: int | None = None) -> dict:
        return self._post(f"/adapters/{name}/promote", {"version": version} if version else None)

    def rollback(self, name: str) -> dict:
        return self._post(f"/adapters/{name}/rollback")

    # -- data -------------------------------------------------------------------------------

    def counts(self) -> dict[str, int]:
        return self._get("/feedback/counts")

    def raters(self) -> list[dict]:
        return self._get("/feedback/raters")["data"]

    def export(self, fmt: str, kind: str) -> Export:
        """One export file, whole: `fmt` dpo|kto|reward|sft, `kind` jsonl|parquet."""
        resp = _check(self.http.get("/feedback/export", params={"format": fmt, "as": kind}))
        disposition = resp.headers.get("content-disposition", "")
        filename = f"flywheel-{fmt}.{kind}"
        if 'filename="' in disposition:
            filename = disposition.split('filename="', 1)[1].split('"', 1)[0] or filename
        rows = resp.headers.get("x-flywheel-rows")
        return Export(
            filename=filename,
            content=resp.content,
            rows=int(rows) if rows and rows.isdigit() else None,
            hint=resp.headers.get("x-flywheel-hint"),
        )

    # -- training ---------------------------------------------------------------------------

    def start_job(
        self,
        method: str,
        name: str | None = None,
        base: str | None = None,
        params: dict | None = None,
        synthetic_pairs: int = 0,
    ) -> dict:
        """A training job (admin); 409 while another one runs."""
        payload: dict[str, Any] = {"method": method, "params": params or {}}
        payload |= {k: v for k, v in (("name", name), ("base", base)) if v}
        if synthetic_pairs:
            payload["synthetic_pairs"] = synthetic_pairs
        return self._post("/train/jobs", payload)

    def jobs(self) -> list[dict]:
        """The newest 50 jobs, without their metrics."""
        return self._get("/train/jobs")

    def job(self, job_id: int) -> dict:
        """One job with every logged metrics row and the tail of its log."""
        return self._get(f"/train/jobs/{job_id}")

    def cancel_job(self, job_id: int) -> dict:
        return self._post(f"/train/jobs/{job_id}/cancel")

    def decisions(self) -> list[dict]:
        """The promotion gate's decisions, newest first."""
        return self._get("/loop/decisions")
