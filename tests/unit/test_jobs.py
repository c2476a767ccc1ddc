"""Training jobs over HTTP: one at a time, within limits, and none left running by a dead gateway
(hardening #10)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import pytest

from cli.main import make_parser
from feedback import Store
from serve.config import TRAIN_LIMITS
from serve.errors import BadRequest, Conflict
from serve.jobs import JobRunner


def runner(tmp_path, limits=None) -> JobRunner:
    store = Store(tmp_path / "flywheel.db")
    return JobRunner(store, SimpleNamespace(engine_url=None), tmp_path, "model", limits)


def test_a_job_asking_beyond_a_limit_is_refused_before_it_starts(tmp_path):
    jobs = runner(tmp_path)
    for name, value in (("epochs", 21), ("max_steps", 10_001), ("batch_size", 65),
                        ("max_length", 4097), ("threads", 10_000)):  # fmt: skip
        with pytest.raises(BadRequest, match=f"{name}={value} is above this gateway's limit"):
            jobs.submit("dpo", None, None, {name: value})
    assert jobs.store.jobs() == []
    raised = runner(tmp_path / "raised", {**TRAIN_LIMITS, "epochs": 50})
    raised.check_limits({"epochs": 50})
    args = make_parser().parse_args(["up", "--train-limit", "epochs=50"])
    assert dict(args.train_limit) == {"epochs": 50}
    with pytest.raises(SystemExit):
        make_parser().parse_args(["up", "--train-limit", "learning_rate=1"])


def test_two_jobs_asked_for_at_once_start_one(tmp_path):
    """The busy check and the start were apart: two requests at once both started a job."""
    jobs = runner(tmp_path)
    start, outcomes = threading.Barrier(4), []

    def ask():
        start.wait()
        try:
            outcomes.append(jobs.submit("dpo", None, None, {}))
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert outcomes.count("conflict") == 3 and len(jobs.store.jobs()) == 1
    finally:
        for running in jobs.jobs.values():
            running.process.kill()
            running.process.wait()


def test_a_training_process_left_by_a_dead_gateway_is_stopped(tmp_path):
    """The job was marked failed, but its process trained on beside the next job."""
    jobs = runner(tmp_path)
    mine = jobs.store.create_job("dpo", {}, status="running")
    other = jobs.store.create_job("dpo", {}, status="succeeded")
    sleep = "import time; time.sleep(120)"
    orphan = subprocess.Popen([sys.executable, "-c", sleep, "--job-id", str(mine)],
                              start_new_session=True)  # fmt: skip
    stranger = subprocess.Popen([sys.executable, "-c", sleep, "--job-id", str(other)],
                                start_new_session=True)  # fmt: skip
    try:
        time.sleep(0.5)  # both are running python by now
        jobs.store.update_job(mine, pgid=orphan.pid)
        jobs.store.update_job(other, pgid=stranger.pid)
        jobs._fail_orphans()
        assert orphan.wait(15) != 0  # stopped
        job = jobs.store.job(mine)
        assert job["status"] == "failed" and "was stopped" in job["error"]
        assert stranger.poll() is None  # a finished job's group is never touched
    finally:
        for process in (orphan, stranger):
            process.kill()
            process.wait()


def test_a_job_stops_when_its_gateway_is_killed(tmp_path):
    """Hardening 10: a `kill -9` of the gateway left its training child running. (The first
    fix, PR_SET_PDEATHSIG, follows the thread that started the child: jobs are started from a
    worker thread, and a job was cancelled when that thread ended.)"""
    import os
    import signal

    child = (
        "import time; from train.job_process import stop_with_gateway, cancel_on_sigterm\n"
        "cancel_on_sigterm(); stop_with_gateway()\n"
        "try:\n    time.sleep(60)\nexcept KeyboardInterrupt:\n    print('cancelled')\n"
    )
    gateway = (  # stands for the gateway: starts the job, then is killed
        "import os, subprocess, sys, time\n"
        f"env = {{**os.environ, 'FLYWHEEL_GATEWAY_PID': str(os.getpid())}}\n"
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}], env=env,\n"
        f"                     stdout=open({str(tmp_path / 'out')!r}, 'w'))\n"
        "print(p.pid, flush=True); time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", gateway], stdout=subprocess.PIPE, text=True)
    job = int(parent.stdout.readline())
    time.sleep(3)  # the job is running and watching
    os.kill(parent.pid, signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (tmp_path / "out").read_text() != "cancelled\n":
        time.sleep(0.2)
    assert (tmp_path / "out").read_text() == "cancelled\n"
    with pytest.raises(ProcessLookupError):
        for _ in range(50):
            os.kill(job, 0)
            time.sleep(0.1)
