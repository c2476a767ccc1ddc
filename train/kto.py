"""KTO on thumbs up/down with a LoRA adapter: TRL's `KTOTrainer` on the shared skeleton.

Rows: `{prompt, completion, label}` (conversational; label True for a thumbs-up). Thumbs are
unpaired and rarely balanced, and users get the weights wrong (TRL #1116, #1467), so when they
are not given they are computed from the label counts (KTO paper, eq. 8). As for DPO, the
reference is always the base model, also when continuing from an adapter.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train import lora
from train.evaluation import preference_eval
from train.lora import OnLog, TrainParams


@dataclass
class KtoParams(TrainParams):
    learning_rate: float = field(
        default=5e-4, metadata={"help": "LoRA lr (DPO's measured value; KTO's loss is alike)"}
    )
    beta: float = field(default=0.1, metadata={"help": "KTO temperature: how far from the base"})
    desirable_weight: float | None = field(
        default=None, metadata={"help": "loss weight of thumbs-up rows (none: from the counts)"}
    )
    undesirable_weight: float | None = field(
        default=None, metadata={"help": "loss weight of thumbs-down rows (none: from the counts)"}
    )


def kto_weights(
    labels: list[bool], desirable: float | None = None, undesirable: float | None = None
) -> tuple[float, float]:
    """Weights that keep (n_d * w_d) / (n_u * w_u) in [1, 4/3], the KTO paper's range.

    Only the rarer side is weighted up (the other stays 1), to exactly balance; the last digit is
    rounded so that float error never leaves the ratio below 1. Weights that are given are kept.
    """
    n_d = sum(1 for label in labels if label)
    n_u = len(labels) - n_d
    if desirable is not None and undesirable is not None:
        return desirable, undesirable
    if n_d == 0 or n_u == 0:  # one kind only: there is nothing to balance
        w_d = 1.0 if desirable is None else desirable
        w_u = 1.0 if undesirable is None else undesirable
        return w_d, w_u
    if desirable is not None:
        return desirable, math.floor(n_d * desirable / n_u * 1e6) / 1e6
    if undesirable is not None:
        return math.ceil(n_u * undesirable / n_d * 1e6) / 1e6, undesirable
    if n_d >= n_u:
        return 1.0, math.floor(n_d / n_u * 1e6) / 1e6
    return math.ceil(n_u / n_d * 1e6) / 1e6, 1.0


def train(
    model_path: str,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    out_dir: Path,
    params: KtoParams,
    on_log: OnLog | None = None,
    init_adapter: str | Path | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on rated completions, save it to `out_dir`, return its metrics."""
    from trl import KTOConfig, KTOTrainer

    lora.require_rows(train_rows, "rated completions")
    if len(train_rows) < 2:
        raise ValueError("KTO needs at least 2 rated completions: it estimates a KL term per batch")
    # KTO samples in order (its KL term pairs each row with its batch neighbour): shuffle once here,
    # seeded, so that a batch is not all thumbs-up because they were stored first.
    train_rows = list(train_rows)
    random.Random(params.seed).shuffle(train_rows)
    w_d, w_u = kto_weights(
        [bool(r["label"]) for r in train_rows], params.desirable_weight, params.undesirable_weight
    )
    dtype = lora.setup(params)
    model = lora.load_model(model_path, dtype, init_adapter)
    ref_model = lora.load_model(model_path, dtype) if init_adapter is not None else None
    run = lora.Run("kto", params, on_log, train_rows, eval_rows, init_adapter)
    config_kwargs = lora.config_kwargs(params, out_dir, len(train_rows), bool(eval_rows), dtype)
    config_kwargs["per_device_train_batch_size"] = max(
        2, config_kwargs["per_device_train_batch_size"]
    )
    config = KTOConfig(
        **config_kwargs,
        beta=params.beta,
        desirable_weight=w_d,
        undesirable_weight=w_u,
        precompute_ref_log_probs=True,
    )
    train_dataset, eval_dataset = lora.to_datasets(out_dir, train_rows, eval_rows)
    trainer = KTOTrainer(
        model=model,
        ref_model=ref_model,
        args=config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=lora.load_tokenizer(model_path),
        peft_config=lora.peft_config_for(params, model, init_adapter),
        callbacks=run.callbacks,
    )
    return run.fit(
        trainer,
        out_dir,
        preference_eval,
        reference="base",
        desirable_weight=w_d,
        undesirable_weight=w_u,
    )
