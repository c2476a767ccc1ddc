"""Training jobs over HTTP on the real stack: run to a served adapter, cancel, fail clearly."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest

from tests.polling import wait_for

pytestmark = pytest.mark.integration

FINISHED = ("succeeded", "failed", "cancelled")


def start(stack, **body) -> httpx.Response:
    return httpx.post(f"{stack.api}/train/jobs", json=body, timeout=60)


def job(stack, job_id: int) -> dict:
    return httpx.get(f"{stack.api}/train/jobs/{job_id}", timeout=30).json()


def finished(stack, job_id: int, timeout: float = 600) -> dict:
    return wait_for(
        lambda: (j := job(stack, job_id))["status"] in FINISHED and j,
        timeout=timeout,
        what=f"job {job_id} to finish",
    )


@pytest.fixture(scope="module")
def liked_answers(stack) -> None:
    """A few thumbs-up answers: SFT rows."""
    for prompt in ("Say hi.", "Name a tree.", "Count to three."):
        body = {"model": "base", "messages": [{"role": "user", "content": prompt}],
                "max_tokens": 16}  # fmt: skip
        reply = httpx.post(f"{stack.api}/chat/completions", json=body, timeout=120).json()
        rating = {"completion_id": reply["id"], "value": 1}
        assert httpx.post(f"{stack.api}/feedback/ratings", json=rating).status_code == 201


def test_a_job_trains_registers_and_serves_its_adapter(stack, liked_answers):
    resp = start(stack, method="sft", name="it-sft", params={"max_steps": 2, "batch_size": 2})
    assert resp.status_code == 201, resp.text
    assert resp.json()["status"] in ("queued", "running")
    done = finished(stack, resp.json()["id"])
    assert done["status"] == "succeeded", done
    assert done["adapter"] == "it-sft@1"
    assert [row["step"] for row in done["metrics"] if "loss" in row] == [1, 2]
    assert done["config"]["dataset_hash"] and done["config"]["train_rows"] >= 1
    assert done["log_tail"]  # the child's console, for the UI
    samples = stack.data_dir / "runs" / f"job-{done['id']}" / "adapter" / "samples.json"
    assert json.loads(samples.read_text())  # base and tuned side by side, by default
    models = {m["id"] for m in httpx.get(f"{stack.api}/models").json()["data"]}
    assert {"it-sft", "it-sft@1"} <= models
    body = {"model": "it-sft", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4}
    answer = httpx.post(f"{stack.api}/chat/completions", json=body, timeout=120).json()
    assert answer["model"] == "it-sft@1"
    adapters = {a["engine_name"]: a for a in httpx.get(f"{stack.api}/adapters").json()}
    assert adapters["it-sft@1"]["job_id"] == done["id"]
    assert adapters["it-sft@1"]["dataset_hash"] == done["config"]["dataset_hash"]
    listed = httpx.get(f"{stack.api}/train/jobs").json()
    assert listed[0]["id"] == done["id"] and not listed[0]["metrics"]  # the list stays small


def test_cancel_leaves_no_adapter_and_one_job_at_a_time(stack, liked_answers):
    resp = start(stack, method="sft", name="it-cancelled", params={"max_steps": 500})
    assert resp.status_code == 201, resp.text
    job_id = resp.json()["id"]
    second = start(stack, method="sft", params={"max_steps": 1})
    assert second.status_code == 409 and f"job {job_id}" in second.json()["error"]["message"]
    wait_for(lambda: job(stack, job_id)["status"] == "running", timeout=120)
    cancel = httpx.post(f"{stack.api}/train/jobs/{job_id}/cancel", timeout=30)
    assert cancel.status_code == 200, cancel.text
    done = finished(stack, job_id, timeout=120)
    assert done["status"] == "cancelled" and done["adapter"] is None
    assert not (stack.data_dir / "runs" / f"job-{job_id}" / "adapter").exists()
    names = {a["name"] for a in httpx.get(f"{stack.api}/adapters").json()}
    assert "it-cancelled" not in names
    again = httpx.post(f"{stack.api}/train/jobs/{job_id}/cancel", timeout=30)
    assert again.status_code == 409


def test_bad_jobs_fail_with_a_clear_error(stack, liked_answers):
    typo = start(stack, method="sft", params={"lerning_rate": 0.1})
    assert typo.status_code == 201
    failed = finished(stack, typo.json()["id"], timeout=120)
    assert failed["status"] == "failed" and "lerning_rate" in failed["error"]
    unknown_base = start(stack, method="sft", base="no-such-adapter")
    assert unknown_base.status_code == 404
    bad_method = start(stack, method="ppo")
    assert bad_method.status_code == 400 and bad_method.json()["error"]["param"] == "method"
    assert httpx.get(f"{stack.api}/train/jobs/99999").status_code == 404


def training_pid(job_id: int) -> int | None:
    """The job's child process, found the way an operator would: by its command line."""
    for proc in Path("/proc").iterdir():
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"train" in argv
            and b"--job-id" in argv
            and argv[argv.index(b"--job-id") + 1] == str(job_id).encode()
        ):
            return int(proc.name)
    return None


def test_a_killed_job_fails_cleanly_and_keeps_the_data(stack, liked_answers):
    counts = httpx.get(f"{stack.api}/feedback/counts").json()
    resp = start(stack, method="sft", name="it-killed", params={"max_steps": 500})
    job_id = resp.json()["id"]
    wait_for(lambda: (job(stack, job_id).get("step") or 0) >= 1, timeout=300, what="a step")
    pid = training_pid(job_id)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # mid-step: no handler runs, nothing is cleaned up
    done = finished(stack, job_id, timeout=120)
    assert done["status"] == "failed" and "signal 9" in done["error"]
    assert not (stack.data_dir / "runs" / f"job-{job_id}" / "adapter").exists()
    assert "it-killed" not in {a["name"] for a in httpx.get(f"{stack.api}/adapters").json()}
    after = httpx.get(f"{stack.api}/feedback/counts").json()
    assert {k: after[k] for k in ("ratings", "comparisons")} == {
        k: counts[k] for k in ("ratings", "comparisons")
    }
    again = start(stack, method="sft", params={"max_steps": 1}, samples=0)
    assert again.status_code == 201  # the runner is not stuck on the dead job
    finished(stack, again.json()["id"])


def test_a_job_killed_while_saving_registers_nothing(stack, liked_answers):
    """Killed after training, with the adapter written to adapter.tmp but not yet renamed."""
    resp = start(stack, method="sft", name="it-half-saved", params={"max_steps": 1})
    job_id = resp.json()["id"]
    log = stack.data_dir / "runs" / f"job-{job_id}" / "train.log"
    wait_for(
        lambda: log.is_file() and "answering" in log.read_text(errors="replace"),
        timeout=300,
        what="the job to reach its save phase",
    )
    os.kill(training_pid(job_id), signal.SIGKILL)
    done = finished(stack, job_id, timeout=120)
    assert done["status"] == "failed" and "signal 9" in done["error"]
    run_dir = stack.data_dir / "runs" / f"job-{job_id}"
    wait_for(lambda: not (run_dir / "adapter.tmp").exists(), timeout=10, what="the cleanup")
    assert not (run_dir / "adapter").exists()
    assert "it-half-saved" not in {a["name"] for a in httpx.get(f"{stack.api}/adapters").json()}
