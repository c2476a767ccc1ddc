"""`flywheel train`'s flags, and what one job was asked for, read once from them.

The options are built once in the command line's `train` handler (`JobOptions.from_args`), as
TRL's scripts build their config dataclasses once in `main`; the job (train/cli.py) reads these
fields, never the argparse namespace.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from common.gateway_client import add_gateway_arguments
from common.layout import add_data_dir_argument
from feedback.exports import DEFAULT_EVAL_FRACTION
from train import methods

SAMPLE_PROMPTS = 4  # answers of base and tuned side by side, saved with the job


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--method",
        choices=list(methods.METHODS),
        default="dpo",
        help="dpo: preference pairs; kto: thumbs up/down; reward: a reward model from pairs "
        "(used for best-of-n, not served); sft: liked and edited answers (default: dpo)",
    )
    parser.add_argument("--name", help="adapter name (default: METHOD-jobN)")
    parser.add_argument(
        "--base",
        default="base",
        help="start from: base (a new LoRA), live (the live adapter; a new LoRA while the base "
        "model is live), or an adapter name or name@N to continue training it "
        "(default: base). The DPO/KTO reference is always the base model. A reward job "
        "takes base or live (the newest reward model). Continuing trains on the judgements "
        "made since the continued model's job started: it learnt the older ones.",
    )
    parser.add_argument(
        "--all-judgements",
        action="store_true",
        help="when continuing (--base), train on every judgement, not only the newer ones",
    )
    parser.add_argument("--config", help="YAML or JSON file of hyperparameters (flags override)")
    parser.add_argument(
        "--eval-fraction",
        type=float,
        default=DEFAULT_EVAL_FRACTION,
        help="share of prompts held out for evaluation, split by prompt hash (default: "
        "%(default)s)",
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=SAMPLE_PROMPTS,
        help="held-out prompts answered by base and tuned model, saved in samples.json "
        "(default: %(default)s; 0: none)",
    )
    parser.add_argument(
        "--synthetic-pairs",
        type=int,
        default=0,
        metavar="N",
        help="dpo: add up to N pairs made by best-of-n: the policy answers a prompt --best-of "
        "times (logged answers first), the reward model picks best and worst, kept only if it "
        "scores the best above and the worst below the midpoint of people's chosen and "
        "rejected answers (needs a finished reward job; default: 0)",
    )
    parser.add_argument(
        "--best-of", type=int, default=4, help="answers sampled per prompt (default: 4)"
    )
    parser.add_argument(
        "--reward-job", type=int, help="the reward model's job id (default: the newest one)"
    )
    parser.add_argument(
        "--engine-url",
        help="the vLLM server that samples for best-of-n (default: the gateway's engine)",
    )
    parser.add_argument("--model", help="base model folder (default: SmolLM2-135M-Instruct)")
    parser.add_argument("--job-id", type=int, help=argparse.SUPPRESS)  # set by the gateway
    parser.add_argument(
        "--no-register", action="store_true", help="train only; do not hand the adapter over"
    )
    add_data_dir_argument(parser)
    add_gateway_arguments(parser)
    methods.add_all_params_arguments(parser)


@dataclass(frozen=True)
class JobOptions:
    """One field per flag of `add_train_arguments` (same name, its default there), and the
    training parameters the command line gave."""

    method: str  # dpo, kto, reward or sft
    data_dir: Path
    name: str | None  # the adapter's name (None: METHOD-jobN)
    base: str  # base, live, or an adapter (name or name@N) to continue
    all_judgements: bool  # continuing: every judgement, not only the newer ones
    config: str | None  # a YAML or JSON file of training parameters
    eval_fraction: float
    samples: int  # held-out prompts answered by base and tuned after training
    synthetic_pairs: int  # best-of-n pairs to add (dpo)
    best_of: int
    reward_job: int | None  # the reward model for best-of-n (None: the newest)
    engine_url: str | None  # where best-of-n samples (None: the gateway's engine)
    job_id: int | None  # set by the gateway for jobs started over HTTP
    no_register: bool  # train only; the gateway registers the adapter
    gateway: str
    api_key: str | None
    params: dict[str, Any]  # the training parameters given; the recipe chooses the rest

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> JobOptions:
        """The options from `flywheel train`'s parsed command line."""
        given = {name: getattr(args, name) for name in methods.param_names()}
        flags = {f.name: getattr(args, f.name) for f in fields(cls) if f.name != "params"}
        return cls(**flags, params={k: v for k, v in given.items() if v is not None})
