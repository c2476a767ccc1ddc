"""Start `flywheel up` for a benchmark and stop it afterwards (engine included)."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from serve.config import ENGINE_KEY_ENV
from serve.engine import free_port


@dataclass
class RunningStack:
    url: str  # the gateway
    engine_url: str  # the vLLM server behind it, for side-by-side comparisons
    data_dir: Path

    @property
    def engine_headers(self) -> dict[str, str]:
        return engine_headers()


def engine_headers() -> dict[str, str]:
    """The key a benchmark's engine was started with (`running_stack` chooses it): the
    benchmarks read from the engine directly, which refuses /v1 without it."""
    key = os.environ.get(ENGINE_KEY_ENV)
    return {"Authorization": f"Bearer {key}"} if key else {}


@contextlib.contextmanager
def running_stack(
    extra_args: list[str] | None = None, data_dir: Path | None = None
) -> Iterator[RunningStack]:
    """A fresh stack in a temporary folder, or on `data_dir` (kept: a benchmark resumes on it)."""
    port = free_port()
    os.environ.setdefault(ENGINE_KEY_ENV, secrets.token_urlsafe(32))  # the stack inherits it
    with (
        contextlib.nullcontext(str(data_dir))
        if data_dir
        else tempfile.TemporaryDirectory(prefix="flywheel-bench-")
    ) as tmp:
        data_dir = Path(tmp)
        data_dir.mkdir(parents=True, exist_ok=True)
        log = open(data_dir / "up.log", "wb")  # noqa: SIM115 - lives as long as the process
        process = subprocess.Popen(
            [sys.executable, "-m", "cli", "up", "--no-ui", "--port", str(port),
             "--data-dir", str(data_dir), *(extra_args or [])],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}"
        try:
            print("starting the stack (engine cold start ~30 s) ...", file=sys.stderr, flush=True)
            deadline = time.monotonic() + 400
            while True:
                if process.poll() is not None:
                    raise SystemExit((data_dir / "up.log").read_text()[-3000:])
                with contextlib.suppress(httpx.HTTPError):
                    health = httpx.get(f"{url}/health", timeout=2)
                    if health.status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise SystemExit("the stack did not start in 400 s")
                time.sleep(1)
            yield RunningStack(url, health.json()["engine"]["url"], data_dir)
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(60)
            log.close()


def stack_pids(stack: RunningStack) -> tuple[int, int]:
    """(gateway, engine): the gateway is the supervised engine's parent process."""
    engine = httpx.get(f"{stack.url}/health", timeout=10).json()["engine"]["pid"]
    parent = int(Path(f"/proc/{engine}/stat").read_text().rsplit(")", 1)[1].split()[1])
    if b"-m\x00cli\x00" not in Path(f"/proc/{parent}/cmdline").read_bytes():
        raise SystemExit(f"the engine's parent {parent} is not `flywheel up`")
    return parent, engine
