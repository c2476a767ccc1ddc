"""What a job starts from: a new LoRA, or an adapter version to continue, and which
judgements it then trains on (those made since the continued model's job started)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from common.layout import job_dir
from feedback import Store
from train.job_options import JobOptions


def start_adapter(opts: JobOptions, store: Store) -> dict[str, Any] | None:
    """The adapter version to continue from (None: a new LoRA on the base model)."""
    base = opts.base
    if base in ("base", "", None):
        return None
    if opts.method == "reward":
        return start_reward_model(opts, store)
    if base == "live":
        return store.live_adapter()  # None while the base model itself is live
    if "@" in base:
        row = store.adapter(base)
    else:
        versions = [r for r in store.adapters() if r["name"] == base]
        live = [r for r in versions if r["status"] == "live"]
        row = (live or versions or [None])[-1]
    if row is None or row["status"] == "retired":
        raise ValueError(f"--base {base}: no such adapter; `flywheel adapters list` shows them")
    return row


def start_reward_model(opts: JobOptions, store: Store) -> dict[str, Any] | None:
    """A reward job continues a reward model, never a chat adapter: live is the newest one."""
    if opts.base != "live":
        raise ValueError(
            f"--base {opts.base}: a reward model continues from base or live "
            "(the newest reward model)"
        )
    newest = newest_reward_model(opts, store)
    if newest is None:
        return None
    job_id, path = newest
    return {"path": str(path), "engine_name": f"reward-job{job_id}", "job_id": job_id}


def newest_reward_model(opts: JobOptions, store: Store) -> tuple[int, Path] | None:
    """The newest succeeded reward job whose model is still on disk: (job id, its folder)."""
    jobs = store.query(
        "select id from jobs where method = 'reward' and status = 'succeeded' order by id desc"
    )
    for job in jobs:
        path = job_dir(opts.data_dir, job["id"]) / "adapter"
        if path.is_dir():
            return job["id"], path
    return None


def judged_since(opts: JobOptions, store: Store, start: dict[str, Any] | None) -> str | None:
    """When continuing: the continued model's job start (it was trained on what came before)."""
    if start is None or opts.all_judgements or not start.get("job_id"):
        return None
    job = store.job(start["job_id"])
    return job["created_at"] if job else None
