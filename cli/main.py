"""`flywheel`: the command line. Each command builds its settings and hands over to a package.

This is the one place that knows both halves: `up`, `adapters`, `keys`, `export` and `import`
belong to `serve/`, `train` and `loop` to `train/`. Training never runs inside the gateway: the
gateway starts `python -m cli train` as a child process for each job.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from common.default_model import model_and_name
from common.gateway_client import GatewayRefused, GatewayUnreachable
from serve.adapters_cli import add_adapters_parser
from serve.export_cli import add_export_parsers
from serve.keys_cli import add_keys_parser
from serve.up_cli import add_up_parser


def cmd_train(args: argparse.Namespace) -> int:
    from serve.adapters import register_offline
    from train.cli import run_train
    from train.job_options import JobOptions

    model, name = model_and_name(args.model, None)
    return run_train(JobOptions.from_args(args), model, name, register_offline)


def cmd_loop(args: argparse.Namespace) -> int:
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


def make_parser() -> argparse.ArgumentParser:
    from train.job_options import add_train_arguments
    from train.loop import add_loop_arguments

    parser = argparse.ArgumentParser(
        prog="flywheel",
        description="Chat with a model, rate answers, train LoRA adapters, serve and compare them.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="what to run"
    )
    add_up_parser(sub)

    train = sub.add_parser("train", help="train a LoRA adapter from the stored judgements")
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
