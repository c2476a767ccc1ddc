"""Waiting on real processes: poll a condition with a deadline that names what was awaited."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], timeout: float = 60, what: str | Callable[[], str] = "a condition"
) -> T:
    """Return the first truthy value of `predicate()`, or fail after `timeout` seconds.

    `what` names the awaited condition in the failure; a callable is asked at the failure, so
    it can say what the page or process showed then (a flaky wait's only evidence).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.2)
    awaited = what() if callable(what) else what
    raise AssertionError(f"timed out after {timeout} s waiting for {awaited}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True
