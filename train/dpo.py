"""DPO on preference pairs with a LoRA adapter: TRL's `DPOTrainer` on the shared skeleton.

Rows: `{prompt, chosen, rejected}`, each a list of messages. The reference is always the base
model: for a new adapter that is the model with its adapter disabled; when continuing from
`init_adapter` it is a separate, untouched copy of the base, because TRL would otherwise make a
frozen copy of the starting adapter the reference (the iterative-DPO recipe keeps the reference
fixed to the initial model; TRL #1824). Its log-probs are computed once up front
(`precompute_ref_log_probs`) instead of at every step.

Speed on a CPU (bench/train.py, docs/benchmarks.md), each step computing the same loss and
gradients: no gradient checkpointing (lora.config_kwargs); the backbone skips the padding
(`unpadded.run_unpadded`: chosen and rejected answers differ most in length); the LM head scores
only the answer tokens, in plain ops on a CPU (`lm_head.cpu_lm_head`); under bf16 autocast, PEFT
does not cast each LoRA input up to the adapter's fp32 only for autocast to cast it back to
bf16.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train import lora, unpadded
from train.evaluation import preference_eval
from train.lm_head import cpu_lm_head
from train.lora import OnLog, TrainParams


@dataclass
class DpoParams(TrainParams):
    learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "LoRA lr of a new adapter (half of it continuing one: train/recipe.py); "
            "measured on 64 judgements: 1e-4 barely moves a preference, 1e-3 does in one round"
        },
    )
    epochs: float = field(
        default=1,
        metadata={
            "help": "passes over the pairs; on whole answers of up to 256 tokens one learned as "
            "much as two, kept more of the model's health at length, in three fifths of the time "
            "(docs/training.md, the recipe)"
        },
    )
    max_length: int = field(
        default=0,
        metadata={
            "help": "tokens per prompt+answer; 0: whole answers, sized to the longest pair, so "
            "the model sees where each answer ends (a 96-token cut left answers looping)"
        },
    )
    beta: float = field(default=0.1, metadata={"help": "DPO temperature: how far from the base"})
    sft_weight: float = field(
        default=1.0,
        metadata={
            "help": "weight of a likelihood term on the chosen answers (RPO): DPO alone mostly "
            "pushes the rejected answer down, this also pulls the chosen one up (0: plain DPO); "
            "on 64 pairs plain DPO shortened answers into fragments"
        },
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.sft_weight < 0:
            raise ValueError(f"sft_weight must not be negative, not {self.sft_weight}")


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
    from peft.helpers import disable_input_dtype_casting
    from trl import DPOConfig, DPOTrainer

    lora.require_rows(train_rows, "preference pairs")
    dtype = lora.setup(params)
    model = lora.load_model(model_path, dtype, init_adapter)
    # Continuing: TRL would make a frozen copy of the starting adapter the reference; pin the base.
    ref_model = lora.load_model(model_path, dtype) if init_adapter is not None else None
    for each in (model, ref_model):
        if each is not None:
            unpadded.run_unpadded(each)
    run = lora.Run("dpo", params, on_log, train_rows, eval_rows, init_adapter)
    config = DPOConfig(
        **lora.config_kwargs(params, out_dir, len(train_rows), bool(eval_rows), dtype),
        beta=params.beta,
        precompute_ref_log_probs=True,
        **(
            {"loss_type": ["sigmoid", "sft"], "loss_weights": [1.0, params.sft_weight]}
            if params.sft_weight
            else {}
        ),
    )
    train_dataset, eval_dataset = lora.to_datasets(out_dir, train_rows, eval_rows)
    with cpu_lm_head():  # from the reference pass in the constructor on
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
        # Autocast computes the LoRA in bf16 whatever its input: PEFT's cast to fp32 is a copy.
        with disable_input_dtype_casting(trainer.model, active=config.bf16):
            return run.fit(trainer, out_dir, preference_eval, reference="base")
