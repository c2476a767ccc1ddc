"""SFT on chosen or edited answers with a LoRA adapter: TRL's `SFTTrainer` on the shared skeleton.

Rows: `{messages}` ending with the assistant's answer. The loss is on that answer only: each row
is split into a conversational prompt (every earlier message) and completion (the last one), and
TRL masks the prompt (`completion_only_loss`). TRL's other route, `assistant_only_loss`, needs
`{% generation %}` markers that the default model's ChatML template does not have.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from train import lora
from train.evaluation import sft_eval
from train.lora import OnLog, TrainParams


@dataclass
class SftParams(TrainParams):
    learning_rate: float = field(
        default=2e-4, metadata={"help": "LoRA lr (TRL's LoRA SFT value; cross-entropy pulls hard)"}
    )
    completion_only_loss: bool = field(
        default=True, metadata={"help": "loss on the final answer only (else on every token)"}
    )


def as_prompt_completion(row: dict[str, Any]) -> dict[str, Any]:
    """`{messages}` -> `{prompt, completion}`: the last message (the answer) is the completion."""
    messages = row["messages"]
    if len(messages) < 2 or messages[-1].get("role") != "assistant":
        raise ValueError(
            "an SFT row must end with the assistant's answer after at least one message"
        )
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def train(
    model_path: str,
    train_rows: list[dict[str, Any]],
    eval_rows: list[dict[str, Any]],
    out_dir: Path,
    params: SftParams,
    on_log: OnLog | None = None,
    init_adapter: str | Path | None = None,
) -> dict[str, Any]:
    """Train a LoRA adapter on conversations, save it to `out_dir`, return its metrics."""
    from trl import SFTConfig, SFTTrainer

    lora.require_rows(train_rows, "conversations")
    dtype = lora.setup(params)
    model = lora.load_model(model_path, dtype, init_adapter)
    run = lora.Run("sft", params, on_log, train_rows, eval_rows, init_adapter)
    config = SFTConfig(
        **lora.config_kwargs(params, out_dir, len(train_rows), bool(eval_rows), dtype),
        completion_only_loss=params.completion_only_loss,
    )
    train_dataset, eval_dataset = lora.to_datasets(
        out_dir,
        [as_prompt_completion(r) for r in train_rows],
        [as_prompt_completion(r) for r in eval_rows],
    )
    trainer = SFTTrainer(
        model=model,
        args=config,
        train_dataset=train_dataset,
        eval_dataset=eval_dataset,
        processing_class=lora.load_tokenizer(model_path),
        peft_config=lora.peft_config_for(params, model, init_adapter),
        callbacks=run.callbacks,
    )
    return run.fit(trainer, out_dir, sft_eval)
