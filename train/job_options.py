"""`flywheel train`'s flags, and what one job was asked for, read once from them.

The options are built once in the command line's `train` handler (`JobOptions.from_args`), as
TRL's scripts build their config dataclasses once in `main`; the job (train/cli.py) reads these
fields, never the argparse namespace.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
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
    method: str  # dpo, kto, reward or sft
    data_dir: Path
    name: str | None = None  # the adapter's name (default: METHOD-jobN)
    base: str = "base"  # base, live, or an adapter (name or name@N) to continue
    all_judgements: bool = False  # continuing: every judgement, not only the newer ones
    config: str | None = None  # a YAML or JSON file of training parameters
    params: dict[str, Any] = field(default_factory=dict)  # given on the command line
    eval_fraction: float = DEFAULT_EVAL_FRACTION
    samples: int = SAMPLE_PROMPTS  # held-out prompts answered by base and tuned after training
    synthetic_pairs: int = 0  # best-of-n pairs to add (dpo)
    best_of: int = 4
    reward_job: int | None = None  # the reward model for best-of-n (default: the newest)
    engine_url: str | None = None  # where best-of-n samples (default: the gateway's engine)
    job_id: int | None = None  # set by the gateway for jobs started over HTTP
    no_register: bool = False  # train only; the gateway registers the adapter
    gateway: str = "http://127.0.0.1:8000"
    api_key: str | None = None

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> JobOptions:
        """The options from `flywheel train`'s parsed command line (train/cli.py's flags)."""
        params = {
            name: value
            for name in methods.param_names()
            if (value := getattr(args, name, None)) is not None
        }
        return cls(
            method=args.method,
            data_dir=args.data_dir,
            name=args.name,
            base=args.base,
            all_judgements=args.all_judgements,
            config=args.config,
            params=params,
            eval_fraction=args.eval_fraction,
            samples=args.samples,
            synthetic_pairs=args.synthetic_pairs,
            best_of=args.best_of,
            reward_job=args.reward_job,
            engine_url=args.engine_url,
            job_id=args.job_id,
            no_register=args.no_register,
            gateway=args.gateway,
            api_key=args.api_key,
        )
