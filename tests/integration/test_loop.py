"""The closed loop on the real stack: reward model + best-of-n, then `flywheel loop` rounds
whose candidates people (here: the test) vote on in the arena, and the gate's decisions."""

from __future__ import annotations

import itertools
import subprocess
import sys
import time

import httpx
import pytest

from feedback import Store
from tests.polling import wait_for

pytestmark = pytest.mark.integration


def job(stack, job_id: int) -> dict:
    return httpx.get(f"{stack.api}/train/jobs/{job_id}", timeout=30).json()


def run_job(stack, **body) -> dict:
    resp = httpx.post(f"{stack.api}/train/jobs", json=body, timeout=60)
    assert resp.status_code == 201, resp.text
    return wait_for(
        lambda: (j := job(stack, resp.json()["id"]))["status"] in ("succeeded", "failed") and j,
        timeout=600,
        what="the job to finish",
    )


def test_reward_model_then_dpo_with_best_of_n_pairs(stack, trained_adapter):
    reward = run_job(stack, method="reward", params={"max_steps": 2})
    assert reward["status"] == "succeeded", reward
    assert reward["adapter"] is None  # a scorer, not a served adapter
    time.sleep(3)  # the runner checks its children twice a second
    assert job(stack, reward["id"])["status"] == "succeeded"  # still, after the runner saw it end
    dpo = run_job(
        stack,
        method="dpo",
        name="it-bon",
        params={"max_steps": 1, "lora_layers": 8},  # the top 8 blocks: the engine serves it too
        synthetic_pairs=3,
        samples=0,
    )
    assert dpo["status"] == "succeeded", dpo
    run_dir = stack.data_dir / "runs" / f"job-{dpo['id']}"
    assert not (run_dir / "adapter" / "samples.json").exists()  # samples=0: straight to serving
    answer = httpx.post(
        f"{stack.api}/chat/completions",
        json={"model": dpo["adapter"], "messages": [{"role": "user", "content": "Hi"}],
              "max_tokens": 4},
        timeout=120,
    )  # fmt: skip
    assert answer.status_code == 200 and answer.json()["model"] == dpo["adapter"], answer.text
    log = (run_dir / "train.log").read_text()
    assert f"scored by the reward model of job {reward['id']}" in log
    assert "synthetic pairs added to" in log
    assert "span the good/bad threshold" in log  # calibrated on the human pairs
    assert 0 <= dpo["config"]["synthetic_pairs"] <= 3


BATTLE_NUMBERS = itertools.count(1)


def vote_for(stack, candidate: str, opponent: str, candidate_wins: bool) -> None:
    """One battle, voted as a rater who prefers (or rejects) the candidate's answers.

    The test plays a rater who recognises the candidate: it reads the hidden sides from the
    database, which no client of the API can do.
    """
    prompt = f"Hello! Tell me about the number {next(BATTLE_NUMBERS)}."  # new pairs, not repeats
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": 8,
            "models": [candidate, opponent]}  # fmt: skip
    resp = httpx.post(f"{stack.api}/arena/battles", json=body, timeout=300)
    if resp.status_code in (404, 409):  # the gate has just decided: retired, or live itself
        return
    assert resp.status_code == 200, resp.text
    battle = resp.json()
    [row] = Store(stack.data_dir / "flywheel.db").query(
        "select model_a from battles where id = ?", [battle["battle_id"]]
    )
    candidate_side = "a" if row["model_a"] == candidate else "b"
    other_side = "b" if candidate_side == "a" else "a"
    winner = candidate_side if candidate_wins else other_side
    resp = httpx.post(
        f"{stack.api}/arena/battles/{battle['battle_id']}/vote", json={"winner": winner}
    )
    assert resp.status_code == 200, resp.text


def test_loop_promotes_a_preferred_candidate_and_retires_a_rejected_one(stack, trained_adapter):
    command = [
        sys.executable, "-m", "cli", "loop", "--gateway", stack.url, "--rounds", "2",
        "--threshold", "0", "--poll", "1", "--name", "it-loop", "--param", "max_steps=1",
        "--param", "batch_size=64",  # one step sees every row: round 1's votes change round 2
        "--min-battles", "3", "--decide-after", "3", "--win-rate", "0.6", "--max-battles", "6",
        # the health check runs for real, on one prompt and short answers (the suite's time);
        # any health passes (one step of training cannot break the model, two answers not tell)
        "--health-prompts", "1", "--health-max-tokens", "32", "--health-margin", "1",
    ]  # fmt: skip
    loop = subprocess.Popen(command, stderr=subprocess.PIPE, text=True)
    try:
        models = lambda: {m["id"] for m in httpx.get(f"{stack.api}/models").json()["data"]}  # noqa: E731
        wait_for(lambda: "it-loop@1" in models(), timeout=600, what="round 1's candidate")
        while not httpx.get(f"{stack.api}/loop/decisions").json():
            vote_for(stack, "it-loop@1", "live", candidate_wins=True)
        wait_for(lambda: "it-loop@2" in models(), timeout=600, what="round 2's candidate")
        while len(httpx.get(f"{stack.api}/loop/decisions").json()) < 2:
            vote_for(stack, "it-loop@2", "live", candidate_wins=False)
        assert loop.wait(timeout=120) == 0
    finally:
        loop.kill()
        stderr = loop.stderr.read()
    second, first = httpx.get(f"{stack.api}/loop/decisions").json()[:2]
    assert (first["candidate"], first["action"]) == ("it-loop@1", "promote"), stderr
    assert first["reason"] and first["evidence"]["candidate"]["battles"] >= 3
    health = first["evidence"]["health"]
    assert health["candidate"]["answers"] == health["live"]["answers"] == 2
    assert "32-token answers" in first["reason"]
    assert (second["candidate"], second["action"]) == ("it-loop@2", "retire"), stderr
    assert second["incumbent"] == "it-loop@1"
    assert "round 2: retire it-loop@2" in stderr
    adapters = {a["engine_name"]: a["status"] for a in httpx.get(f"{stack.api}/adapters").json()}
    assert adapters.get("it-loop@1") == "live" and "it-loop@2" not in adapters
    httpx.post(f"{stack.api}/adapters/it-loop/rollback", timeout=60)  # leave base live again
