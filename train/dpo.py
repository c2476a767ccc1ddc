"""DPO on preference pairs with a LoRA adapter: TRL's `DPOTrainer` on the shared skeleton.

Rows: `{prompt, chosen, rejected}`, each a list of messages. The reference is always the base
model: for a new adapter that is the model with its adapter disabled; when continuing from
`init_adapter` it is a separate, untouched copy of the base, because TRL would otherwise make a
frozen copy of the starting adapter the reference (the iterative-DPO recipe keeps the reference
fixed to the initial model; TRL #1824). Its log-probs are computed once up front
(`precompute_ref_log_probs`) instead of at every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train import lora
from train.evaluation import preference_eval
from train.lora import OnLog, TrainParams


@dataclass
class DpoParams(TrainParams):
    learning_rate: float = field(
        default=5e-4, metadata={"help": "LoRA lr; measured: 5e-4 moves a preference, 1e-4 barely"}
    )
    beta: float = field(default=0.1, metadata={"help": "DPO temperature: how far from the base"})


def train(
    model_path: str,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    out_dir: Path,
    params: DpoParams,
    on_log: OnLog | None = None,
    init_adapter: str | Path | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on preference pairs, save it to `out_dir`, return its metrics.

    Heavy imports live here so the CLI starts fast.
    """
    from trl import DPOConfig, DPOTrainer

    lora.require_rows(train_rows, "preference pairs")
    dtype = lora.setup(params)
    model = lora.load_model(model_path, dtype, init_adapter)
    # Continuing: TRL would make a frozen copy of the starting adapter the reference; pin the base.
    ref_model = lora.load_model(model_path, dtype) if init_adapter is not None else None
    run = lora.Run("dpo", params, on_log, train_rows, eval_rows, init_adapter)
    config = DPOConfig(
        **lora.config_kwargs(params, out_dir, len(train_rows), bool(eval_rows), dtype),
        beta=params.beta,
        precompute_ref_log_probs=True,
    )
    train_dataset, eval_dataset = lora.to_datasets(out_dir, train_rows, eval_rows)
    trainer = DPOTrainer(
        model=model,
        ref_model=ref_model,
        args=config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=lora.load_tokenizer(model_path),
        peft_config=lora.peft_config_for(params, model, init_adapter),
        callbacks=run.callbacks,
    )
    return run.fit(trainer, out_dir, preference_eval, reference="base")
