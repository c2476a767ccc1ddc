"""Continuing a model trains on the judgements made since it was trained (the iterative recipe):
each round of `flywheel loop --base live` then costs the same, however many came before."""

import argparse
import time

import pytest

from feedback import Store
from feedback.store import Exchange
from train.cli import _prepare
from train.job_options import JobOptions, add_train_arguments
from train.ranks import Ranks


def args_for(tmp_path, *argv: str) -> JobOptions:
    parser = argparse.ArgumentParser()
    add_train_arguments(parser)
    # a fixed length: whole answers would size it with the model's tokenizer, and `m` is none
    argv = ["--data-dir", str(tmp_path), "--eval-fraction", "0", "--max-length", "96", *argv]
    return JobOptions.from_args(parser.parse_args(argv))


def compare(store: Store, question: str) -> None:
    messages = [{"role": "user", "content": question}]
    store.log_exchanges(
        [Exchange(f"{question}-good", "live", "base", messages, "A full, kind answer."),
         Exchange(f"{question}-bad", "live", "base", messages, "No.")]
    )  # fmt: skip
    store.add_comparison(f"{question}-good", f"{question}-bad", "a")


def finished_job(store: Store, tmp_path, method: str) -> int:
    time.sleep(0.01)  # times are kept to the millisecond: the judgements before it came before
    job_id = store.create_job(method, {})
    store.update_job(job_id, status="succeeded")
    (tmp_path / "runs" / f"job-{job_id}" / "adapter").mkdir(parents=True)
    return job_id


@pytest.fixture
def store(tmp_path):
    store = Store(tmp_path / "flywheel.db")
    for i in range(3):
        compare(store, f"Old question {i}?")
    return store


def new_round(store: Store, tmp_path) -> tuple[int, int]:
    """A reward job and a DPO job whose adapter went live; then two new comparisons."""
    reward_job = finished_job(store, tmp_path, "reward")
    dpo_job = finished_job(store, tmp_path, "dpo")
    store.add_adapter(
        {"name": "loop", "version": 1, "engine_name": "loop@1", "base_model": "m",
         "path": str(tmp_path / "runs" / f"job-{dpo_job}" / "adapter"), "job_id": dpo_job,
         "status": "live"}
    )  # fmt: skip
    time.sleep(0.01)  # judgements made after the jobs started
    for i in range(2):
        compare(store, f"New question {i}?")
    return reward_job, dpo_job


def prompts_of(job) -> set[str]:
    return {row["prompt"][0]["content"] for row in job.train_rows}


def test_continuing_the_live_adapter_trains_on_the_newer_judgements_only(store, tmp_path):
    _, dpo_job = new_round(store, tmp_path)
    job = _prepare(args_for(tmp_path, "--base", "live"), store, "m", "base", Ranks())
    assert job.start["engine_name"] == "loop@1"
    assert prompts_of(job) == {"New question 0?", "New question 1?"}
    assert job.config["judged_since"] == store.job(dpo_job)["created_at"]

    again = _prepare(
        args_for(tmp_path, "--base", "live", "--all-judgements"), store, "m", "base", Ranks()
    )
    assert len(prompts_of(again)) == 5 and again.config["judged_since"] is None
    fresh = _prepare(args_for(tmp_path), store, "m", "base", Ranks())  # a new LoRA: everything
    assert len(prompts_of(fresh)) == 5 and fresh.start is None


def test_a_reward_job_continues_the_newest_reward_model(store, tmp_path):
    reward_job, _ = new_round(store, tmp_path)
    args = args_for(tmp_path, "--method", "reward", "--base", "live")
    job = _prepare(args, store, "m", "base", Ranks())
    assert job.start["path"] == str(tmp_path / "runs" / f"job-{reward_job}" / "adapter")
    assert prompts_of(job) == {"New question 0?", "New question 1?"}


def test_a_reward_model_never_continues_a_chat_adapter(store, tmp_path, capsys):
    new_round(store, tmp_path)
    args = args_for(tmp_path, "--method", "reward", "--base", "loop@1")
    assert _prepare(args, store, "m", "base", Ranks()) == 2
    assert "a reward model continues from base or live" in capsys.readouterr().err


def test_no_new_judgements_since_the_continued_adapter_says_so(tmp_path, capsys):
    store = Store(tmp_path / "flywheel.db")
    compare(store, "Old question?")
    dpo_job = finished_job(store, tmp_path, "dpo")
    store.add_adapter(
        {"name": "loop", "version": 1, "engine_name": "loop@1", "base_model": "m",
         "path": str(tmp_path), "job_id": dpo_job, "status": "live"}
    )  # fmt: skip
    assert _prepare(args_for(tmp_path, "--base", "live"), store, "m", "base", Ranks()) == 2
    err = capsys.readouterr().err
    assert "no new judgements since loop@1" in err and "--all-judgements" in err
