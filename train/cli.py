"""`flywheel train`: judgements -> dataset snapshot -> TRL run -> adapter -> registered and served.

The run writes into `runs/job-N/adapter.tmp` and renames it only when complete, so a crash
or Ctrl-C never leaves a half-written adapter where anything would pick it up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

from feedback import Store
from feedback.datasets import dpo_pairs, snapshot_hash
from serve.config import DEFAULT_MAX_LORA_RANK, add_data_dir_argument
from serve.gateway_client import GatewayUnreachable, add_gateway_arguments, call
from train import dpo
from train.methods import add_params_arguments, load_params, overrides_from_args

NO_PAIRS = (
    "no decisive comparisons to train on yet: in the UI press Regenerate and pick the better "
    "answer, or POST /v1/feedback/comparisons (ties and both-bad votes are not used)"
)


def say(message: str) -> None:
    print(f"flywheel: {message}", file=sys.stderr, flush=True)


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method", choices=["dpo"], default="dpo", help="training method (KTO/reward/SFT: soon)"
    )
    parser.add_argument("--name", help="adapter name (default: dpo-jobN)")
    parser.add_argument("--model", help="base model folder (default: SmolLM2-135M-Instruct)")
    add_data_dir_argument(parser)
    add_gateway_arguments(parser)
    add_params_arguments(parser, dpo.DpoParams)


def _code_revision() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent
        )
    except OSError:
        return None
    return out.stdout.strip() or None


def _register(args, base_name: str, model_path: str, payload: dict) -> dict:
    """Hand the adapter to the running gateway; with none running, record it for the next `up`."""
    try:
        return call(args, "POST", "/v1/adapters", payload)
    except GatewayUnreachable:
        from serve.adapters import AdapterRegistry

        say(f"no gateway at {args.gateway}; registering offline (served at the next `flywheel up`)")
        registry = AdapterRegistry(
            Store(args.data_dir / "flywheel.db"),
            root=args.data_dir / "adapters",
            base_name=base_name,
            base_model=model_path,
            max_rank=DEFAULT_MAX_LORA_RANK,  # what the next `flywheel up` will accept
        )
        lineage = {k: v for k, v in payload.items() if k not in ("name", "path")}
        return asyncio.run(registry.register(payload["name"], Path(payload["path"]), **lineage))


def run_train(args: argparse.Namespace, model_path: str, base_name: str) -> int:
    store = Store(args.data_dir / "flywheel.db")
    rows = dpo_pairs(store)
    if not rows:
        say(NO_PAIRS)
        return 2
    params = load_params("dpo", overrides=overrides_from_args(args, dpo.DpoParams))
    dataset_hash = snapshot_hash(rows)
    config = {"params": params.to_dict(), "pairs": len(rows), "dataset_hash": dataset_hash}
    job_id = store.create_job(args.method, config)
    run_dir = args.data_dir / "runs" / f"job-{job_id}"
    staging, final = run_dir / "adapter.tmp", run_dir / "adapter"
    say(f"job {job_id}: DPO on {len(rows)} pairs (dataset {dataset_hash[:12]})")

    def on_log(step: int, total: int, metrics: dict) -> None:
        store.append_job_metrics(job_id, step, total, metrics)

    try:
        metrics = dpo.train(model_path, rows, [], staging, params, on_log)
        lineage = {
            "method": args.method,
            "base_model": model_path,
            "job_id": job_id,
            "dataset_hash": dataset_hash,
            "pairs": len(rows),
            "params": params.to_dict(),
            "metrics": metrics,
            "code_revision": _code_revision(),
        }
        (staging / "lineage.json").write_text(json.dumps(lineage, indent=2))
        shutil.rmtree(final, ignore_errors=True)
        staging.rename(final)
    except BaseException as exc:
        status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.update_job(job_id, status=status, error=f"{type(exc).__name__}: {exc}")
        shutil.rmtree(staging, ignore_errors=True)
        say(f"job {job_id} {status}: {exc}")
        return 130 if status == "cancelled" else 1
    finally:
        shutil.rmtree(run_dir / "adapter.tmp.checkpoints", ignore_errors=True)

    payload = {
        "name": args.name or f"{args.method}-job{job_id}",
        "path": str(final.resolve()),
        "job_id": job_id,
        "dataset_hash": dataset_hash,
        "hyperparameters": params.to_dict(),
        "metrics": metrics,
    }
    try:
        adapter = _register(args, base_name, model_path, payload)
    except Exception as exc:
        store.update_job(job_id, status="failed", error=str(exc))
        say(str(exc))
        return 1
    store.update_job(job_id, status="succeeded", adapter=adapter["engine_name"])
    say(
        f"job {job_id} done: adapter {adapter['engine_name']} ({adapter['status']}); "
        f"chat with it as model={adapter['name']!r}"
    )
    return 0
