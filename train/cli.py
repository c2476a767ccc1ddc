"""`flywheel train`: judgements -> dataset snapshot -> TRL run -> adapter -> registered and served.

The run writes into `runs/job-N/adapter.tmp` and renames it only when complete, so a crash,
a kill or Ctrl-C never leaves a half-written adapter where anything would pick it up. The
same command runs jobs started over HTTP: the gateway then passes `--job-id` and
`--no-register`, and registers the finished adapter itself.
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common.gateway_client import GatewayUnreachable, call
from common.layout import REGISTRATION_FILE, db_path, job_dir
from feedback import Store
from feedback.exports import export_rows, row_split
from train import methods, recipe
from train.job_options import JobOptions
from train.job_process import cancel_on_sigterm, stop_with_gateway
from train.job_start import judged_since, newest_reward_model, start_adapter
from train.lora import TrainParams
from train.ranks import Ranks

NO_ROWS = {
    "dpo": "no decisive comparisons to train on yet: in the UI press Regenerate and pick the "
    "better answer, vote in the arena, or POST /v1/feedback/comparisons (ties and both-bad "
    "votes are not preferences)",
    "reward": "no decisive comparisons to train a reward model on yet: pick better answers in "
    "the UI or the arena first",
    "kto": "no rated answers yet: give answers a thumbs up or down (POST /v1/feedback/ratings)",
    "sft": "no liked or edited answers yet: thumbs up good answers or edit bad ones",
}
RegisterOffline = Callable[[Path, str, str, dict], dict]
"""(data dir, base model's name, base model's path, registration) -> the registered adapter."""


STARTED = time.monotonic()


def say(message: str) -> None:
    """A progress line, stamped with seconds since the start: a job's log shows where time went."""
    print(f"flywheel: [{time.monotonic() - STARTED:6.1f} s] {message}", file=sys.stderr, flush=True)


def _code_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _finite(value: Any) -> Any:
    """JSON without NaN/inf (a diverged loss must not make the lineage unreadable)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _register(
    opts: JobOptions,
    base_name: str,
    model_path: str,
    payload: dict,
    offline: RegisterOffline | None,
) -> dict:
    """Hand the adapter to the running gateway; with none running, record it for the next `up`."""
    try:
        return call(opts, "POST", "/v1/adapters", payload)
    except GatewayUnreachable:
        if offline is None:
            raise
        say(f"no gateway at {opts.gateway}; registering offline (served at the next `flywheel up`)")
        return offline(opts.data_dir, base_name, model_path, payload)


def _synthetic_pairs(
    opts: JobOptions,
    store: Store,
    model_path: str,
    base_name: str,
    start,
    human: list[dict[str, Any]],
) -> list:
    """Best-of-n pairs from the policy being trained (the start adapter, else the base)."""
    from train.best_of_n import ANCHOR_PAIRS, logged_candidates, synthetic_pairs, train_prompts

    if opts.reward_job:
        reward_job = opts.reward_job
        reward_path = job_dir(opts.data_dir, reward_job) / "adapter"
    else:
        reward_job, reward_path = newest_reward_model(opts, store) or (None, None)
    if reward_path is None or not reward_path.is_dir():
        raise ValueError(
            "no reward model: train one first (flywheel train --method reward), "
            "or pass --reward-job ID"
        )
    engine_url = opts.engine_url
    if not engine_url:
        engine_url = call(opts, "GET", "/health")["engine"]["url"]
    prompts = train_prompts(store, opts.eval_fraction)
    policy = start["engine_name"] if start else base_name
    logged = logged_candidates(store, policy, opts.eval_fraction, opts.best_of)
    reused = min(len(logged), opts.synthetic_pairs)
    fresh = opts.synthetic_pairs - reused if prompts else 0  # sampled in turn, as often as needed
    say(
        f"best-of-n: {reused} prompts with logged answers of {policy}, {fresh} more answered "
        f"x{opts.best_of} now; scored by the reward model of job {reward_job}"
    )
    rows, threshold = synthetic_pairs(
        engine_url,
        policy,
        prompts,
        opts.synthetic_pairs,
        model_path,
        reward_path,
        n=opts.best_of,
        logged=logged,
        anchors=human,
    )
    if threshold is not None:
        say(
            f"best-of-n: {len(rows)} of {opts.synthetic_pairs} pairs span the good/bad threshold "
            f"({threshold:.2f}, from {min(len(human), ANCHOR_PAIRS)} human pairs)"
        )
    return rows


def _save_samples(
    opts: JobOptions, model_path: str, adapter: Path, eval_rows: list, train_rows: list
) -> None:
    from train.evaluation import sample_side_by_side

    source = eval_rows or train_rows
    prompts: list = []
    for row in source:
        prompt = row["prompt"] if "prompt" in row else row["messages"][:-1]
        if prompt not in prompts:  # KTO and SFT rows repeat prompts
            prompts.append(prompt)
    prompts = prompts[: opts.samples]
    if not prompts:
        return
    samples = sample_side_by_side(model_path, adapter, prompts, max_new_tokens=48)
    (adapter / "samples.json").write_text(json.dumps(samples, indent=2))


@dataclass
class PreparedJob:
    """What rank 0 read from the store for one job; every rank trains on exactly this."""

    id: int
    params: TrainParams
    start: dict[str, Any] | None  # the adapter version continued from (None: a new LoRA)
    train_rows: list[dict[str, Any]]
    eval_rows: list[dict[str, Any]]
    snapshot: str
    schema: str
    config: dict[str, Any]


def run_train(
    opts: JobOptions,
    model_path: str,
    base_name: str,
    register_offline: RegisterOffline | None = None,
) -> int:
    """One job, in one process or in each of an `accelerate launch`'s (train/ranks.py).

    `register_offline` records the adapter in the data folder when no gateway answers; the
    command line passes serve's (train/ never imports serve/); without it, no gateway is an error.
    """
    ranks = Ranks.from_env()
    ranks.join()
    store = Store(db_path(opts.data_dir)) if ranks.is_main else None
    job = _prepare(opts, store, model_path, base_name, ranks) if ranks.is_main else None
    job = ranks.share(job)
    if isinstance(job, int):  # rank 0 refused the job: every rank exits with its status
        return job
    return _train(opts, store, model_path, base_name, job, ranks, register_offline)


class JobRefused(Exception):
    """Nothing to train, or a setting that cannot be: said once, recorded on the job, exit 2."""


def _prepare(
    opts: JobOptions, store: Store, model_path: str, base_name: str, ranks: Ranks
) -> PreparedJob | int:
    """Rows, parameters and the job row (rank 0 only); an exit status when there is no job."""
    try:
        return _read_job(opts, store, model_path, base_name, ranks)
    except JobRefused as exc:
        say(str(exc))
        if opts.job_id:
            store.update_job(opts.job_id, status="failed", error=str(exc))
        return 2


def _read_job(
    opts: JobOptions, store: Store, model_path: str, base_name: str, ranks: Ranks
) -> PreparedJob:
    """The job's parameters and rows from the store, its row created or marked running."""
    job_id = opts.job_id
    try:
        params = methods.load_params(opts.method, opts.config, opts.params)
        start = start_adapter(opts, store)
        since = judged_since(opts, store, start)
        export = export_rows(
            store, opts.method, split="all", since=since, eval_fraction=opts.eval_fraction
        )
    except (ValueError, OSError) as exc:
        raise JobRefused(str(exc)) from exc
    train_rows = [
        r for r in export.rows if row_split(opts.method, r, opts.eval_fraction) == "train"
    ]
    eval_rows = [r for r in export.rows if row_split(opts.method, r, opts.eval_fraction) == "eval"]
    if not train_rows:
        message = NO_ROWS[opts.method]
        if since:
            message = (
                f"no new judgements since {start['engine_name']} was trained ({since}): make "
                "some, or pass --all-judgements to train on the older ones again"
            )
        if export.rows:
            message = f"all {len(export.rows)} rows fell in the eval split; lower --eval-fraction"
        raise JobRefused(message)

    synthetic: list[dict[str, Any]] = []
    if opts.synthetic_pairs and opts.method == "dpo":
        try:
            synthetic = _synthetic_pairs(opts, store, model_path, base_name, start, train_rows)
        except (ValueError, OSError, GatewayUnreachable) as exc:
            raise JobRefused(f"best-of-n: {exc}") from exc
        say(f"best-of-n: {len(synthetic)} synthetic pairs added to {len(train_rows)} human ones")
        train_rows = train_rows + synthetic

    given = methods.given_names(opts.method, opts.config, opts.params)
    count = recipe.chat_token_counter(model_path)
    continuing = start is not None
    params, choices = recipe.choose(opts.method, params, given, train_rows, continuing, count)
    for choice in choices:
        say(f"recipe: {choice}")
    config = {
        "params": params.to_dict(),
        "recipe": choices,
        "synthetic_pairs": len(synthetic),
        "judged_since": since,
        "base": opts.base,
        "init_adapter": start["engine_name"] if start else None,
        "train_rows": len(train_rows),
        "eval_rows": len(eval_rows),
        "dataset_hash": export.snapshot,
        "export_schema": export.schema,
        "world_size": ranks.world_size,
    }
    if job_id:
        store.update_job(job_id, status="running", config=json.dumps(config))
    else:
        job_id = store.create_job(opts.method, config)
    say(
        f"job {job_id}: {opts.method} on {len(train_rows)} rows, {len(eval_rows)} held out "
        f"(dataset {export.snapshot[:12]})"
        + (f", continuing {start['engine_name']}" if start else "")
        + (f", {ranks.world_size} processes" if ranks.distributed else "")
    )
    return PreparedJob(
        job_id, params, start, train_rows, eval_rows, export.snapshot, export.schema, config
    )


def _train(
    opts: JobOptions,
    store: Store | None,
    model_path: str,
    base_name: str,
    job: PreparedJob,
    ranks: Ranks,
    register_offline: RegisterOffline | None,
) -> int:
    """Train on every rank; rank 0 alone writes progress, the adapter, its lineage, registers."""
    method = methods.get(opts.method)
    job_id, params, start = job.id, job.params, job.start
    train_rows, eval_rows, config = job.train_rows, job.eval_rows, job.config
    run_dir = job_dir(opts.data_dir, job_id)
    staging, final = run_dir / "adapter.tmp", run_dir / "adapter"
    if ranks.distributed:
        say(f"job {job_id}: rank {ranks.rank} of {ranks.world_size} training")

    def on_log(step: int, total: int, metrics: dict) -> None:
        store.append_job_metrics(job_id, step, total, _finite(metrics))

    cancel_on_sigterm()
    stop_with_gateway()
    try:
        metrics = _finite(
            method.train(
                model_path,
                train_rows,
                eval_rows,
                staging,
                params,
                on_log if ranks.is_main else None,
                init_adapter=start["path"] if start else None,
            )
        )
        if not ranks.is_main:  # the Trainer saved on rank 0 only; the rest is rank 0's too
            return 0
        if opts.samples and opts.method != "reward":
            say(f"job {job_id}: answering {opts.samples} held-out prompts with base and tuned")
            _save_samples(opts, model_path, staging, eval_rows, train_rows)
        lineage = {
            "method": opts.method,
            "base_model": model_path,
            "parent": config["init_adapter"],
            "job_id": job_id,
            "dataset_hash": job.snapshot,
            "export_schema": job.schema,
            "train_rows": len(train_rows),
            "eval_rows": len(eval_rows),
            "params": params.to_dict(),
            "world_size": ranks.world_size,
            "metrics": metrics,
            "code_revision": _code_revision(),
        }
        (staging / "lineage.json").write_text(json.dumps(lineage, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        if ranks.is_main:
            store.update_job(job_id, status=status, error=f"{type(exc).__name__}: {exc}")
        say(f"job {job_id} {status}: {exc}")
        return 130 if status == "cancelled" else 1
    finally:
        if ranks.is_main:  # the others must not remove what rank 0 is writing
            shutil.rmtree(staging, ignore_errors=True)
            shutil.rmtree(run_dir / "adapter.tmp.checkpoints", ignore_errors=True)

    if opts.method == "reward":  # a scorer for best-of-n, not a chat adapter: nothing to serve
        store.update_job(job_id, status="succeeded")
        say(f"job {job_id} done: reward model in {final}")
        return 0
    payload = {
        "name": opts.name or f"{opts.method}-job{job_id}",
        "path": str(final.resolve()),
        "parent": config["init_adapter"],
        "job_id": job_id,
        "dataset_hash": job.snapshot,
        "hyperparameters": {"method": opts.method, **params.to_dict()},
        "metrics": metrics,
    }
    if opts.no_register:
        (run_dir / REGISTRATION_FILE).write_text(json.dumps(payload, indent=2))
        say(f"job {job_id} trained: {final} (to be registered by the gateway)")
        return 0
    try:
        adapter = _register(opts, base_name, model_path, payload, register_offline)
    except Exception as exc:
        message = getattr(exc, "message", None) or str(exc)
        store.update_job(job_id, status="failed", error=message)
        say(message)
        return 1
    store.update_job(job_id, status="succeeded", adapter=adapter["engine_name"])
    say(
        f"job {job_id} done: adapter {adapter['engine_name']} ({adapter['status']}); "
        f"chat with it as model={adapter['name']!r}"
    )
    return 0
