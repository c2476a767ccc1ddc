"""A whole answer is cancelled when its client leaves, and returned when the client stays."""

from __future__ import annotations

import asyncio

import pytest
from fastapi import Request

from serve.client_gone import CLIENT_CLOSED, unless_client_leaves


def request_whose_client_leaves_after(seconds: float | None) -> Request:
    """A request with its body read; its client disconnects after `seconds` (None: never)."""

    async def receive() -> dict:
        await asyncio.sleep(3600 if seconds is None else seconds)
        return {"type": "http.disconnect"}

    return Request({"type": "http", "method": "POST", "path": "/", "headers": []}, receive)


def test_the_work_is_cancelled_once_the_client_leaves():
    cleaned_up = []

    async def answer() -> str:
        try:
            await asyncio.sleep(30)
            return "done"
        finally:
            cleaned_up.append(True)  # where the engine request is closed

    async def scenario():
        started = asyncio.get_running_loop().time()
        result = await unless_client_leaves(request_whose_client_leaves_after(0.05), answer())
        return result, asyncio.get_running_loop().time() - started

    result, took = asyncio.run(scenario())
    assert result.status_code == CLIENT_CLOSED
    assert cleaned_up == [True] and took < 5


def test_the_answer_comes_back_while_the_client_waits():
    async def answer() -> str:
        await asyncio.sleep(0.01)
        return "done"

    request = request_whose_client_leaves_after(None)
    assert asyncio.run(unless_client_leaves(request, answer())) == "done"


def test_an_error_in_the_work_reaches_the_caller():
    async def broken() -> str:
        raise ValueError("engine said no")

    request = request_whose_client_leaves_after(None)
    with pytest.raises(ValueError, match="engine said no"):
        asyncio.run(unless_client_leaves(request, broken()))
