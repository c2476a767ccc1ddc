"""`flywheel`: the command line. Each command builds its settings and hands over to a package."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

from serve.adapters_cli import add_adapters_parser
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
    add_data_dir_argument,
)
from serve.default_model import DEFAULT_MODEL_NAME, default_model_dir, prepare
from serve.export_cli import add_export_parsers
from serve.keys_cli import add_keys_parser

DEFAULT_GATEWAY = "http://127.0.0.1:8000"


def _model_and_name(model: str | None, served_name: str | None) -> tuple[str, str]:
    """The default model is prepared in the cache on first use; any other is used as given."""
    if model is None:
        return str(prepare(default_model_dir())), served_name or DEFAULT_MODEL_NAME
    return model, served_name or Path(model.rstrip("/")).name


def cmd_up(args: argparse.Namespace) -> int:
    from serve.engine import engine_arg_problem
    from serve.gateway import run_up

    if problem := engine_arg_problem(args.engine_arg):
        print(f"flywheel up: {problem}", file=sys.stderr)
        return 2
    model, name = _model_and_name(args.model, args.served_model_name)
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


def cmd_train(args: argparse.Namespace) -> int:
    from train.cli import run_train

    model, name = _model_and_name(args.model, None)
    return run_train(args, model, name)


def cmd_loop(args: argparse.Namespace) -> int:
    from serve.gateway_client import GatewayRefused, GatewayUnreachable
    from train.loop import run_loop

    try:
        return run_loop(args)
    except (GatewayUnreachable, GatewayRefused) as exc:
        print(f"flywheel loop: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def cmd_test(args: argparse.Namespace) -> int:
    started = time.monotonic()
    code = subprocess.call([sys.executable, "-m", "pytest", *args.pytest_args])
    minutes = (time.monotonic() - started) / 60
    print(f"flywheel: tests took {minutes:.1f} min (pytest exit code {code})", file=sys.stderr)
    if code == 5:
        print("flywheel: pytest collected no tests; that is a failure", file=sys.stderr)
    return code


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


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flywheel",
        description="Chat with a model, rate answers, train LoRA adapters, serve and compare them.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to run"
    )

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

    train = sub.add_parser("train", help="train a LoRA adapter from the stored judgements")
    from train.cli import add_train_arguments

    add_train_arguments(train)
    train.set_defaults(func=cmd_train)

    loop = sub.add_parser(
        "loop",
        help="train, battle and promote unattended as judgements come in",
        description="Each round: wait for --threshold new judgements, train a candidate, let "
        "the arena judge it against the live model, then promote or retire it (the gate's "
        "rules below). Runs against a running gateway; every decision is recorded with its "
        "reason (GET /v1/loop/decisions).",
    )
    from train.loop import add_loop_arguments

    add_loop_arguments(loop)
    loop.set_defaults(func=cmd_loop)

    add_adapters_parser(sub)
    add_keys_parser(sub)
    add_export_parsers(sub)

    test = sub.add_parser("test", help="run the test suite (pytest arguments pass through)")
    test.add_argument("pytest_args", nargs=argparse.REMAINDER, help="arguments for pytest")
    test.set_defaults(func=cmd_test)
    return parser


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["test"] and not {"-h", "--help"} & set(argv[1:2]):
        # everything after `test` belongs to pytest, verbatim and in order
        sys.exit(cmd_test(argparse.Namespace(pytest_args=argv[1:])))
    args = make_parser().parse_args(argv)
    sys.exit(args.func(args))


if __name__ == "__main__":
    main()
