"""What every training method shares: the LoRA, the run's knobs, and one Trainer run around them.

Each method (`train/dpo.py`, `kto.py`, `reward.py`, `sft.py`) subclasses `TrainParams` with its own
knobs and builds its TRL trainer; everything else lives here, so the methods agree on threads,
dtype, evaluation, early stopping, the best checkpoint, the progress rows and the returned metrics.

Defaults were chosen for SmolLM2-135M-Instruct on a 2-core AVX2 CPU (measured there): LoRA r16
on all linear layers, batch 8, 256 tokens; DPO at lr 5e-4 moved a style preference from ~11 % to
~80 % of answers where 1e-4 barely moved it. The dtype follows the CPU (common/hardware.py):
bf16 where it is native (DPO step on the default model measured ~2x faster than fp32 on an AMX
CPU), fp32 elsewhere.
TRL 1.16 turns gradient checkpointing and bf16 autocast on by default, whatever the CPU; both
are set here explicitly. Torch threads follow the cores other processes leave free (`SpareCores`):
on 2 cores shared with the engine, a thread waiting for a core holds up every op.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from common.hardware import choose_dtype, cpu_threads
from train.ranks import Ranks
from train.spare_cores import SpareCores

OnLog = Callable[[int, int, dict[str, float]], None]
"""`on_log(step, total_steps, row)`: called for every logged row, train and eval alike."""

DTYPES = ("auto", "float32", "bfloat16")
LR_SCHEDULES = ("linear", "constant", "cosine")


@dataclass
class TrainParams:
    """Knobs every method shares. A method's dataclass adds its own and may change defaults."""

    learning_rate: float = field(default=5e-4, metadata={"help": "LoRA learning rate"})
    lr_schedule: str = field(
        default="linear",
        metadata={
            "help": "learning rate over the run: linear (decays to 0), constant, or cosine; "
            "a run of a dozen steps learns about twice as far at constant"
        },
    )
    epochs: float = field(default=3, metadata={"help": "passes over the training rows"})
    max_steps: int = field(default=-1, metadata={"help": "stop after N steps (-1: by epochs)"})
    batch_size: int = field(default=8, metadata={"help": "rows per step (per device)"})
    grad_accum: int = field(default=1, metadata={"help": "steps whose gradients are summed"})
    max_length: int = field(
        default=256,
        metadata={"help": "tokens per prompt+answer (0: whole answers, the longest row's length)"},
    )
    lora_r: int = field(default=16, metadata={"help": "LoRA rank (<= engine --max-lora-rank)"})
    lora_alpha: int = field(default=32, metadata={"help": "LoRA scaling numerator (2 x rank)"})
    lora_dropout: float = field(default=0.05, metadata={"help": "dropout on the LoRA path"})
    target_modules: str = field(
        default="all-linear", metadata={"help": "layers to adapt: all-linear or a,b,c"}
    )
    lora_layers: int = field(
        default=0,
        metadata={
            "help": "adapt only the top N transformer blocks (0: all): the blocks below then "
            "need no backward pass, so a step costs less"
        },
    )
    eval_each_epoch: bool = field(
        default=True, metadata={"help": "evaluate on the held-out rows after every epoch"}
    )
    early_stopping_patience: int = field(
        default=2, metadata={"help": "stop after N evaluations without a lower eval loss (0: off)"}
    )
    seed: int = field(default=0, metadata={"help": "seed for the run"})
    threads: int = field(
        default=0,
        metadata={
            "help": "torch threads per process (0: the cores other processes leave free, "
            "re-decided at every step; under accelerate launch, usable cores / processes)"
        },
    )
    dtype: str = field(
        default="auto",
        metadata={"help": "auto (bf16 only on CPUs with native bf16, or a GPU), float32, bfloat16"},
    )

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {', '.join(LR_SCHEDULES)}, not {self.lr_schedule!r}"
            )
        if self.max_length < 0:
            raise ValueError(f"max_length must be 0 (whole answers) or more, not {self.max_length}")
        positive = ("epochs", "batch_size", "grad_accum", "lora_r")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be greater than 0, not {getattr(self, name)!r}")
        if self.learning_rate < 0:  # 0 is allowed: a control run that must not move
            raise ValueError(f"learning_rate must not be negative, not {self.learning_rate}")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ValueError(
                f"max_steps must be -1 (by epochs) or at least 1, not {self.max_steps}"
            )
        if self.lora_layers < 0:
            raise ValueError(f"lora_layers must be 0 (all) or more, not {self.lora_layers}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), not {self.lora_dropout}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def setup(params: TrainParams):
    """Threads, seed and dtype for the run; returns the torch dtype to load the model in."""
    import torch
    from transformers import set_seed

    torch.set_num_threads(params.threads or Ranks.from_env().threads(cpu_threads()))
    set_seed(params.seed)
    name = choose_dtype() if params.dtype == "auto" else params.dtype
    # A GPU without bf16 serves float16; training in it would need loss scaling: train in float32.
    return getattr(torch, "float32" if name == "float16" else name)


def require_rows(rows: list[dict[str, Any]], what: str) -> None:
    if not rows:
        raise ValueError(f"no {what} to train on: the training set is empty")


def lora_config(params: TrainParams, model, task_type: str = "CAUSAL_LM", **extra: Any):
    from peft import LoraConfig

    targets = params.target_modules
    if params.lora_layers:
        blocks = model.config.num_hidden_layers
        if params.lora_layers > blocks:
            raise ValueError(f"lora_layers={params.lora_layers}: the model has {blocks} blocks")
        below = "|".join(str(i) for i in range(blocks - params.lora_layers))
        if below:  # PEFT takes no `layers_to_transform` with "all-linear": leave the rest out
            extra["exclude_modules"] = rf".*\.(layers|h|blocks)\.({below})\..*"
    return LoraConfig(
        r=params.lora_r,
        lora_alpha=params.lora_alpha,
        lora_dropout=params.lora_dropout,
        # PEFT's "all-linear" leaves out the output head (lm_head, or a reward model's score)
        target_modules=targets if targets == "all-linear" else targets.split(","),
        task_type=task_type,
        **extra,
    )


def load_tokenizer(model_path: str):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(model_path: str, dtype, init_adapter: str | Path | None = None):
    """The base causal LM; with `init_adapter`, wrapped in that adapter, trainable."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_path, dtype=dtype)
    return continue_from(model, init_adapter)


def continue_from(model, init_adapter: str | Path | None):
    """`model` wrapped in the adapter at `init_adapter`, trainable; `model` itself when None."""
    from peft import PeftModel

    if init_adapter is None:
        return model
    return PeftModel.from_pretrained(model, str(init_adapter), is_trainable=True)


def peft_config_for(params: TrainParams, model, init_adapter, task_type="CAUSAL_LM", **extra):
    """A fresh LoRA for TRL to apply, or None when the model already carries `init_adapter`."""
    return None if init_adapter is not None else lora_config(params, model, task_type, **extra)


def checkpoints_dir(out_dir: Path) -> Path:
    return Path(out_dir).parent / (Path(out_dir).name + ".checkpoints")


def to_datasets(out_dir: Path, train_rows: list, eval_rows: list) -> tuple[Any, Any]:
    """The train and eval `Dataset`s (eval None without rows), as every rank must see them.

    One process keeps them in memory. Under `accelerate launch` rank 0 writes them into the run's
    scratch folder first and every rank reads them from there: TRL caches precomputed reference
    log-probs next to a dataset's files, written by rank 0 and read by all, and next to an
    in-memory dataset means a temp folder of each process's own (the other ranks then fail to
    open rank 0's cache file).
    """
    from datasets import Dataset, load_from_disk

    ranks = Ranks.from_env()
    named = {"train": train_rows, "eval": eval_rows}
    if not ranks.distributed:
        found = {k: Dataset.from_list(rows) if rows else None for k, rows in named.items()}
        return found["train"], found["eval"]
    from accelerate import PartialState

    folder = checkpoints_dir(out_dir) / "datasets"
    found = {}
    with PartialState().main_process_first():  # rank 0 writes, then the others read
        for name, rows in named.items():
            if rows and ranks.is_main:
                Dataset.from_list(rows).save_to_disk(str(folder / name))
            found[name] = load_from_disk(str(folder / name)) if rows else None
    return found["train"], found["eval"]


def config_kwargs(params: TrainParams, out_dir: Path, n_train: int, has_eval: bool, dtype) -> dict:
    """Keyword arguments every TRL `*Config` gets: the same run on every method."""
    import torch

    each_epoch = has_eval and params.eval_each_epoch
    batch = max(1, min(params.batch_size, n_train))
    return {
        "output_dir": str(checkpoints_dir(out_dir)),
        "per_device_train_batch_size": batch,
        "per_device_eval_batch_size": batch,
        "gradient_accumulation_steps": params.grad_accum,
        "num_train_epochs": params.epochs,
        "max_steps": params.max_steps,
        "learning_rate": params.learning_rate,
        "lr_scheduler_type": params.lr_schedule,
        "max_length": params.max_length or None,  # 0 left unresolved (train/recipe.py): no cut
        "seed": params.seed,
        "bf16": dtype == torch.bfloat16,  # TRL's default (True) would emulate bf16 on AVX2 CPUs
        "use_cpu": not torch.cuda.is_available(),  # bf16 on a CPU is refused without it
        "gradient_checkpointing": False,  # TRL's default (True) trades compute for memory we have
        "logging_steps": 1,
        "eval_strategy": "epoch" if each_epoch else "no",
        "save_strategy": "epoch" if each_epoch else "no",
        "save_only_model": True,  # checkpoints hold the adapter only, no optimizer state
        "save_total_limit": 1,  # plus the best one, which the Trainer always keeps
        "load_best_model_at_end": each_epoch,
        "metric_for_best_model": "eval_loss",
        "greater_is_better": False,
        "report_to": [],
        "dataloader_num_workers": 0,
    }


class Run:
    """One training run: relays logged rows to `on_log` and gathers the returned metrics."""

    def __init__(
        self,
        method: str,
        params: TrainParams,
        on_log: OnLog | None,
        train_rows: list,
        eval_rows: list,
        init_adapter: str | Path | None,
    ):
        from transformers import EarlyStoppingCallback, TrainerCallback

        self.facts = {
            "method": method,
            "init_adapter": str(init_adapter) if init_adapter else None,
            "train_rows": len(train_rows),
            "eval_rows": len(eval_rows),
        }
        has_eval = bool(eval_rows)
        self.last: dict[str, float] = {}
        run = self

        class Relay(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kwargs):
                row = {k: float(v) for k, v in (logs or {}).items() if isinstance(v, int | float)}
                if row:
                    run.last.update(row)
                    if on_log:
                        on_log(state.global_step, state.max_steps, row)

        self.callbacks = [Relay()]
        if not params.threads and not Ranks.from_env().distributed:  # else fixed by `setup`
            self.callbacks.append(SpareCores(cpu_threads()).callback())
        self.early_stopping = has_eval and params.eval_each_epoch and params.early_stopping_patience
        if self.early_stopping:
            self.callbacks.append(EarlyStoppingCallback(params.early_stopping_patience))
        self.has_eval = has_eval
        self.eval_each_epoch = params.eval_each_epoch

    def fit(
        self, trainer, out_dir: Path, evaluate: Callable[[Any], dict] | None = None, **facts: Any
    ) -> dict[str, Any]:
        """Train, evaluate the kept model on the held-out rows, save it to `out_dir`.

        `evaluate(trainer)` gives the method's comparison with the base (train/evaluation.py);
        `facts` (e.g. `reference="base"`) go into the returned metrics as they are. Under
        `accelerate launch` every rank calls this (evaluation and saving are collective; the
        Trainer writes on rank 0 only), and only rank 0 removes the checkpoints.
        """
        try:
            trainer.train()
            state = trainer.state
            metrics: dict[str, Any] = dict(self.last)
            metrics.update(steps=state.global_step, total_steps=state.max_steps)
            if not self.has_eval:
                metrics["evaluation"] = "none: no held-out rows given"
            else:
                metrics["evaluation"] = "each epoch" if self.eval_each_epoch else "after training"
                if state.best_model_checkpoint:
                    metrics["best_step"] = int(state.best_model_checkpoint.rsplit("-", 1)[1])
                    metrics["best_eval_loss"] = float(state.best_metric)
                metrics["stopped_early"] = bool(
                    self.early_stopping and state.global_step < state.max_steps
                )
                if evaluate is not None:
                    metrics.update(evaluate(trainer))
            trainer.save_model(str(out_dir))
        finally:
            if Ranks.from_env().is_main:
                shutil.rmtree(checkpoints_dir(out_dir), ignore_errors=True)
        world = {"world_size": trainer.args.world_size}  # the processes that really trained
        return {**metrics, **self.facts, **world, **facts}
