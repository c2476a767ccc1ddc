"""How the command line talks to a running gateway: one call, one clear error (the UI reads
errors the same way)."""

from __future__ import annotations

import argparse
import os
from typing import Any, Protocol

import httpx

DEFAULT_GATEWAY = "http://127.0.0.1:8000"


class GatewayUnreachable(Exception):
    def __init__(self, url: str):
        super().__init__(f"no gateway at {url}: start it with `./flywheel up` or pass --gateway")


class GatewayRefused(Exception):
    """The gateway answered with an error; the message is the one from its OpenAI-shaped body."""

    def __init__(self, status: int, message: str):
        super().__init__(f"{message} (HTTP {status})")
        self.status = status


def add_gateway_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--gateway", default=DEFAULT_GATEWAY, help="the running gateway (default: %(default)s)"
    )
    parser.add_argument(
        "--api-key",
        default=os.environ.get("FLYWHEEL_API_KEY"),
        help="admin API key when the gateway requires keys (default: $FLYWHEEL_API_KEY)",
    )


class GatewayAddress(Protocol):
    """Where the gateway is and the key to call it with: parsed flags, or a job's options."""

    gateway: str
    api_key: str | None


def call(
    args: GatewayAddress, method: str, path: str, payload: dict | None = None, timeout=300
) -> Any:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        resp = httpx.request(
            method, f"{args.gateway}{path}", json=payload, headers=headers, timeout=timeout
        )
    except httpx.ConnectError:
        raise GatewayUnreachable(args.gateway) from None
    if resp.status_code >= 400:
        raise GatewayRefused(resp.status_code, error_message(resp))
    return resp.json()


def error_message(resp: httpx.Response) -> str:
    """The message of the gateway's OpenAI-shaped error body; else the body's start, else the
    status (a proxy in between may answer with HTML or nothing)."""
    try:
        return resp.json()["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return resp.text[:500] or f"HTTP {resp.status_code}"
