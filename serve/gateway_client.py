"""How CLI commands talk to a running gateway: one call, one clear error."""

from __future__ import annotations

import argparse
import os
from typing import Any

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


def call(
    args: argparse.Namespace, method: str, path: str, payload: dict | None = None, timeout=300
) -> Any:
    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    try:
        resp = httpx.request(
            method, f"{args.gateway}{path}", json=payload, headers=headers, timeout=timeout
        )
    except httpx.ConnectError:
        raise GatewayUnreachable(args.gateway) from None
    if resp.status_code >= 400:
        try:
            message = resp.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = resp.text[:500]
        raise GatewayRefused(resp.status_code, message)
    return resp.json()
