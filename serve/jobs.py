"""Training jobs started over HTTP: each one a `flywheel train` child process of the gateway.

A child process, not a thread: training holds the GIL and most of the CPU for minutes, and a
crash or a kill must not take the gateway with it. The child writes its progress into the
store (the UI draws the loss curve from it) and its adapter into `runs/job-N/adapter`; the
gateway registers that adapter itself once the child has exited cleanly, so the registry keeps
a single writer and a child never needs an admin key. One job runs at a time: on a small
machine two would only slow each other down and the engine with them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.layout import REGISTRATION_FILE, job_dir
from feedback import Store
from serve.adapters import AdapterRegistry
from serve.config import ENGINE_KEY_ENV, TRAIN_LIMITS
from serve.errors import BadRequest, Conflict, NotFound

log = logging.getLogger("flywheel.jobs")

FINISHED = ("succeeded", "failed", "cancelled")


def stop_orphan(pgid: int, job_id: int) -> bool:
    """Stop a job's process group left by a gateway that died, if it still runs and is that
    job's (a process in it has `--job-id N` on its command line: a pid may have been reused).
    True if anything was stopped."""
    mark = f"\0--job-id\0{job_id}\0".encode()
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and mark in (stat.parent / "cmdline").read_bytes():
                members.append(int(stat.parent.name))
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not readable
    if not members:
        return False
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_running(p) for p in members):
            time.sleep(0.1)
    return True


def _running(pid: int) -> bool:
    """Alive and not a zombie (an exited process its parent has not reaped yet)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@dataclass
class RunningJob:
    job_id: int
    process: subprocess.Popen
    cancelled: bool = False


class JobRunner:
    def __init__(
        self,
        store: Store,
        registry: AdapterRegistry,
        data_dir: Path,
        model: str,
        limits: dict[str, float] | None = None,
        engine_api_key: str | None = None,
    ):
        self.store = store
        self.registry = registry
        self.data_dir = data_dir
        self.model = model
        self.limits = dict(TRAIN_LIMITS if limits is None else limits)
        self.engine_api_key = engine_api_key  # best-of-n samples from the engine
        self.jobs: dict[int, RunningJob] = {}  # started and not yet finished by the watcher
        self._watcher: asyncio.Task | None = None
        self._one_at_a_time = threading.Lock()  # submit runs in a thread pool: check-then-act

    def start(self) -> None:
        self._fail_orphans()
        self._watcher = asyncio.create_task(self._watch())

    def _fail_orphans(self) -> None:
        """Jobs left `running` by a gateway that died. The child stops itself when its gateway
        dies (train/job_process.py `stop_with_gateway`), but one that outlived it (or its
        workers) is stopped here, so a new job never trains beside it; it is recognised by its
        job id on its command line."""
        rows = self.store.query("select id, pgid from jobs where status in ('queued', 'running')")
        for row in rows:
            stopped = row["pgid"] and stop_orphan(row["pgid"], row["id"])
            error = "the gateway stopped while this job ran" + (
                "; its training process, still running, was stopped" if stopped else ""
            )
            self.store.update_job(row["id"], status="failed", error=error)

    def check_limits(self, params: dict[str, Any]) -> None:
        """A 400 for a parameter above its limit (`flywheel up --train-limit K=V`)."""
        for name, limit in self.limits.items():
            value = params.get(name)
            if isinstance(value, int | float) and not isinstance(value, bool) and value > limit:
                raise BadRequest(
                    f"{name}={value} is above this gateway's limit of {limit:g} for a job "
                    f"started over HTTP; ask for less, or have an admin restart it with "
                    f"`flywheel up --train-limit {name}=N`",
                    param=f"params.{name}",
                )

    def submit(
        self,
        method: str,
        name: str | None,
        base: str | None,
        params: dict[str, Any],
        synthetic_pairs: int = 0,
        samples: int | None = None,
    ) -> int:
        self.check_limits(params)
        with self._one_at_a_time:
            busy = [j for j in self.jobs.values() if self._busy(j)]
            if busy:
                raise Conflict(
                    f"job {busy[0].job_id} is still running; wait for it or cancel it "
                    f"(POST /v1/train/jobs/{busy[0].job_id}/cancel)"
                )
            return self._start(method, name, base, params, synthetic_pairs, samples)

    def _start(
        self,
        method: str,
        name: str | None,
        base: str | None,
        params: dict[str, Any],
        synthetic_pairs: int,
        samples: int | None,
    ) -> int:
        config = {
            "params": params,
            "base": base,
            "name": name,
            "synthetic_pairs": synthetic_pairs,
            "samples": samples,
            "origin": "http",
        }
        job_id = self.store.create_job(method, config, status="queued")
        run_dir = job_dir(self.data_dir, job_id)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "params.json").write_text(json.dumps(params, indent=2))
        log_path = run_dir / "train.log"
        command = [
            sys.executable, "-m", "cli", "train", "--method", method,
            "--job-id", str(job_id), "--data-dir", str(self.data_dir), "--model", self.model,
            "--config", str(run_dir / "params.json"), "--no-register",
        ]  # fmt: skip
        if name:
            command += ["--name", name]
        if synthetic_pairs:
            command += ["--synthetic-pairs", str(synthetic_pairs)]
        if samples is not None:
            command += ["--samples", str(samples)]
        if self.registry.engine_url:  # best-of-n samples from the engine itself
            command += ["--engine-url", self.registry.engine_url]
        # the job ends with this gateway, even a `kill -9` of it (train/job_process.py)
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "FLYWHEEL_GATEWAY_PID": str(os.getpid())}
        if self.engine_api_key:  # in the environment: a command line is readable by all
            env[ENGINE_KEY_ENV] = self.engine_api_key
        if base:
            command += ["--base", base]
        with open(log_path, "ab") as log_file:
            process = subprocess.Popen(
                command,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,  # its own process group: cancel stops its children too
                env=env,
            )
        self.store.update_job(job_id, log_path=str(log_path), pgid=process.pid)
        self.jobs[job_id] = RunningJob(job_id, process)
        log.info("job %d: %s started (pid %d)", job_id, method, process.pid)
        return job_id

    def _busy(self, running: RunningJob) -> bool:
        """Alive and not yet finished (a finished child may take a moment to exit)."""
        if running.process.poll() is not None:
            return False
        job = self.store.job(running.job_id) or {}
        return job.get("status") not in FINISHED

    def cancel(self, job_id: int) -> None:
        job = self.store.job(job_id)
        if job is None:
            raise NotFound(f"no training job {job_id}")
        running = self.jobs.get(job_id)
        if running is None or not self._busy(running):
            raise Conflict(f"job {job_id} is not running (status: {job['status']})")
        running.cancelled = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(running.process.pid, signal.SIGTERM)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(0.5)
            for running in [j for j in self.jobs.values() if j.process.poll() is not None]:
                try:
                    await self._finish(running)
                except Exception:
                    log.exception("finishing job %d failed", running.job_id)
                finally:
                    del self.jobs[running.job_id]

    async def _finish(self, running: RunningJob) -> None:
        """The child has exited: register its adapter, or record why there is none."""
        code = running.process.returncode
        if code != 0:  # a killed child cleans nothing up: its half-written output goes here
            run_dir = job_dir(self.data_dir, running.job_id)
            for leftover in ("adapter.tmp", "adapter.tmp.checkpoints"):
                await asyncio.to_thread(shutil.rmtree, run_dir / leftover, True)
        job = self.store.job(running.job_id) or {}
        if running.cancelled:
            self.store.update_job(running.job_id, status="cancelled", error="cancelled by a user")
            return
        if job.get("status") in FINISHED:  # the child recorded its own end (e.g. a reward model)
            return
        if code != 0:
            if job.get("status") not in FINISHED:
                how = f"signal {-code}" if code < 0 else f"exit code {code}"
                tail = _tail(job.get("log_path"))
                self.store.update_job(
                    running.job_id,
                    status="failed",
                    error=f"the training process ended with {how}: {tail}",
                )
            return
        run_dir = job_dir(self.data_dir, running.job_id)
        registration = run_dir / REGISTRATION_FILE
        if not registration.is_file():
            self.store.update_job(
                running.job_id, status="failed", error="the job ended without an adapter"
            )
            return
        payload = json.loads(registration.read_text())
        try:
            lineage = {k: v for k, v in payload.items() if k not in ("name", "path")}
            adapter = await self.registry.register(
                payload["name"], Path(payload["path"]), **lineage
            )
        except Exception as exc:
            message = getattr(exc, "message", None) or str(exc)
            self.store.update_job(running.job_id, status="failed", error=message)
            return
        self.store.update_job(running.job_id, status="succeeded", adapter=adapter["engine_name"])

    async def close(self) -> None:
        """The gateway is stopping: a running job is cancelled, not orphaned."""
        if self._watcher:
            self._watcher.cancel()
        for running in self.jobs.values():
            if running.process.poll() is None:
                try:
                    os.killpg(running.process.pid, signal.SIGTERM)
                    await asyncio.to_thread(running.process.wait, 30)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(running.process.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            job = self.store.job(running.job_id) or {}
            if job.get("status") not in FINISHED:
                self.store.update_job(
                    running.job_id, status="cancelled", error="the gateway stopped"
                )
        self.jobs.clear()


def _tail(log_path: str | None, lines: int = 5) -> str:
    if not log_path or not Path(log_path).is_file():
        return "(no log)"
    text = Path(log_path).read_text(errors="replace").strip().splitlines()
    return " | ".join(text[-lines:]) or "(empty log)"
