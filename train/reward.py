"""A reward model from comparisons: TRL's `RewardTrainer` on the shared skeleton.

Rows: `{prompt, chosen, rejected}` (conversational), the same rows as DPO's; RewardTrainer 1.16
takes this explicit-prompt form as it is (it prepends the prompt to both answers itself). The
model is the base as a sequence classifier with one output (the score) and a LoRA with the
score head trained in full (`modules_to_save`). That head is why vLLM could not serve it, and
it does not need to: the reward model is used offline, to pick the best of n samples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train import lora
from train.evaluation import reward_eval
from train.lora import OnLog, TrainParams

SCORE_HEAD = "score"  # what transformers names the head of *ForSequenceClassification


@dataclass
class RewardParams(TrainParams):
    learning_rate: float = field(
        default=5e-4, metadata={"help": "LoRA lr (the new score head learns at it too)"}
    )
    epochs: float = field(
        default=1,
        metadata={"help": "passes over the pairs; one, as the loop measured (docs/experiments.md)"},
    )


def load_scoring_model(model_path: str, dtype, init_adapter, pad_token_id: int):
    """The base model with a one-number score head (a new LoRA, or `init_adapter` continued)."""
    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        model_path,
        dtype=dtype,
        num_labels=1,
        pad_token_id=pad_token_id,  # the score is read at the last token that is not padding
    )
    # The new head is trained in full: keep its weights in fp32 (like LoRA's) so that small
    # updates are not rounded away in bf16; autocast runs the forward pass in the model's dtype.
    getattr(model, SCORE_HEAD).to(torch.float32)
    return lora.continue_from(model, init_adapter)


def load_reward_model(model_path: str, adapter_path: str | Path, dtype: str = "auto"):
    """A trained reward model, ready to score: `(model, tokenizer)` for reward_scores.

    The LoRA is merged into the weights (in float32, then cast): scoring only runs forward
    passes, and an unmerged LoRA adds two small matmuls and a cast to every linear layer
    (merged scores 1.1-1.3x as fast here: bench/reward_scoring.py).
    "auto" scores in the dtype training uses on this CPU (bf16 where it is native: ~1.8x
    faster than float32 here); the score head stays float32 either way.
    """
    import torch
    from peft import PeftModel

    from common.hardware import choose_dtype

    dtype = choose_dtype() if dtype == "auto" else dtype
    tokenizer = lora.load_tokenizer(str(adapter_path))  # saved with the pad token used in training
    base = load_scoring_model(model_path, torch.float32, None, tokenizer.pad_token_id)
    model = PeftModel.from_pretrained(base, str(adapter_path)).merge_and_unload()
    model.to(getattr(torch, dtype))
    getattr(model, SCORE_HEAD).to(torch.float32)
    return model.eval(), tokenizer


def train(
    model_path: str,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    out_dir: Path,
    params: RewardParams,
    on_log: OnLog | None = None,
    init_adapter: str | Path | None = None,
) -> dict[str, Any]:
    """Train a LoRA reward model on preference pairs, save it to `out_dir`, return its metrics."""
    from trl import RewardConfig, RewardTrainer

    lora.require_rows(train_rows, "preference pairs")
    dtype = lora.setup(params)
    tokenizer = lora.load_tokenizer(model_path)
    model = load_scoring_model(model_path, dtype, init_adapter, tokenizer.pad_token_id)
    run = lora.Run("reward", params, on_log, train_rows, eval_rows, init_adapter)
    config = RewardConfig(
        **lora.config_kwargs(params, out_dir, len(train_rows), bool(eval_rows), dtype)
    )
    peft_config = lora.peft_config_for(
        params, model, init_adapter, task_type="SEQ_CLS", modules_to_save=[SCORE_HEAD]
    )
    train_dataset, eval_dataset = lora.to_datasets(out_dir, train_rows, eval_rows)
    trainer = RewardTrainer(
        model=model,
        args=config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=run.callbacks,
    )
    return run.fit(trainer, out_dir, lambda t: reward_eval(t, eval_rows))
