"""`flywheel up`: its flags, the settings built from them, and the gateway run on them."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from common.default_model import model_and_name
from common.layout import add_data_dir_argument
from serve.config import (
    DEFAULT_ARENA_BATTLES_PER_HOUR,
    DEFAULT_MAX_ADAPTER_BYTES,
    DEFAULT_MAX_ADAPTER_FILES,
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_LORA_RANK,
    DEFAULT_MAX_MESSAGES,
    ENGINE_KEY_ENV,
    TRAIN_LIMITS,
    VLLM_LORA_RANKS,
    Settings,
)


def cmd_up(args: argparse.Namespace) -> int:
    from serve.engine import engine_arg_problem
    from serve.gateway import run_up

    if problem := engine_arg_problem(args.engine_arg):
        print(f"flywheel up: {problem}", file=sys.stderr)
        return 2
    model, name = model_and_name(args.model, args.served_model_name)
    settings = Settings(
        model=model,
        served_model_name=name,
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        engine_url=args.engine_url,
        engine_api_key=args.engine_api_key,
        engine_port=args.engine_port,
        dtype=args.dtype,
        max_model_len=args.max_model_len,
        max_lora_rank=args.max_lora_rank,
        engine_args=args.engine_arg,
        ui=not args.no_ui,
        adapter_roots=args.adapter_root,
        max_adapter_bytes=args.max_adapter_mib << 20,
        max_adapter_files=args.max_adapter_files,
        max_body_bytes=args.max_body_mib << 20,
        max_messages=args.max_messages,
        max_tokens_limit=args.max_tokens_cap,
        arena_battles_per_hour=args.arena_battles_per_hour,
        train_limits={**TRAIN_LIMITS, **dict(args.train_limit)},
    )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per engine call is noise
    return run_event_loop(run_up(settings))


def run_event_loop(main) -> int:
    """uvloop where available: the gateway relays every token, so its loop's cost matters."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


def train_limit(text: str) -> tuple[str, float]:
    """`NAME=N` for --train-limit: a known limit and a positive number."""
    name, _, value = text.partition("=")
    if name not in TRAIN_LIMITS:
        raise argparse.ArgumentTypeError(
            f"{name!r} is not a limit; one of {', '.join(TRAIN_LIMITS)}"
        )
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the limit must be a number, e.g. {name}=50"
        ) from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: the limit must be greater than 0")
    return name, number


def add_limit_arguments(up: argparse.ArgumentParser) -> None:
    """What callers may make the gateway read or generate (docs/security.md)."""
    up.add_argument(
        "--adapter-root",
        action="append",
        type=Path,
        default=[],
        metavar="DIR",
        help="a folder adapters may be registered from, besides the data dir; repeatable. "
        "Enforced once an API key exists or any root is given (keyless local mode: any folder)",
    )
    up.add_argument(
        "--max-adapter-mib",
        type=int,
        default=DEFAULT_MAX_ADAPTER_BYTES >> 20,
        help="largest adapter folder accepted, in MiB (default: %(default)s)",
    )
    up.add_argument(
        "--max-adapter-files",
        type=int,
        default=DEFAULT_MAX_ADAPTER_FILES,
        help="most files in an adapter folder (default: %(default)s)",
    )
    up.add_argument(
        "--max-body-mib",
        type=int,
        default=DEFAULT_MAX_BODY_BYTES >> 20,
        help="largest /v1 request body in MiB, else 413 (default: %(default)s)",
    )
    up.add_argument(
        "--max-messages",
        type=int,
        default=DEFAULT_MAX_MESSAGES,
        help="most messages in one chat request (default: %(default)s)",
    )
    up.add_argument(
        "--arena-battles-per-hour",
        type=int,
        default=DEFAULT_ARENA_BATTLES_PER_HOUR,
        metavar="N",
        help="arena battles a user key may start per hour, else 429 (admin keys and keyless "
        "local mode: no cap; 0: no cap for anyone; default: %(default)s)",
    )
    up.add_argument(
        "--train-limit",
        type=train_limit,
        action="append",
        default=[],
        metavar="NAME=N",
        help="raise (or lower) a limit on what an HTTP training job may ask for; repeatable. "
        "Defaults: " + ", ".join(f"{k}={v}" for k, v in TRAIN_LIMITS.items()),
    )
    up.add_argument(
        "--max-tokens-cap",
        type=int,
        metavar="N",
        help="largest max_tokens a request may ask for (default: --max-model-len)",
    )


def add_up_parser(sub: argparse._SubParsersAction) -> None:
    up = sub.add_parser("up", help="start the engine, the gateway and the UI")
    up.add_argument("--model", help="HF model folder or hub id (default: SmolLM2-135M-Instruct)")
    up.add_argument("--served-model-name", help="the base model's name in /v1/models")
    up.add_argument("--host", default="127.0.0.1", help="interface to bind (default: %(default)s)")
    up.add_argument("--port", type=int, default=8000, help="gateway port (default: %(default)s)")
    add_data_dir_argument(up)
    up.add_argument(
        "--engine-url", help="use an already running vLLM server (GPU box, cluster) instead"
    )
    up.add_argument("--engine-port", type=int, default=0, help="supervised engine port (0: free)")
    up.add_argument(
        "--engine-api-key",
        default=os.environ.get(ENGINE_KEY_ENV) or None,
        metavar="KEY",
        help="the engine's API key: for --engine-url, the key it was started with; the "
        "supervised engine gets a random one unless given (default: $" + ENGINE_KEY_ENV + ")",
    )
    up.add_argument(
        "--dtype", default="auto", help="engine dtype; auto = bfloat16 where the hardware has it"
    )
    up.add_argument("--max-model-len", type=int, default=2048, help="context length")
    up.add_argument(
        "--max-lora-rank",
        type=int,
        choices=VLLM_LORA_RANKS,
        default=DEFAULT_MAX_LORA_RANK,
        metavar="R",
        help="largest LoRA rank the engine serves and the gateway accepts, one of "
        f"{', '.join(map(str, VLLM_LORA_RANKS))} (default: %(default)s; a larger one reserves "
        "more engine memory per adapter slot)",
    )
    up.add_argument(
        "--engine-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra vLLM flag, repeatable (e.g. --engine-arg=--tensor-parallel-size=2)",
    )
    up.add_argument("--no-ui", action="store_true", help="serve the API only")
    add_limit_arguments(up)
    up.set_defaults(func=cmd_up)
