"""`flywheel export` and `flywheel import`: training files, on the machine that holds the database.

Both work on the data dir's database directly (SQLite in WAL: safe beside a running gateway).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common.layout import add_data_dir_argument, db_path
from feedback import Store
from feedback.export_files import KINDS, write_export
from feedback.exports import (
    DEFAULT_EVAL_FRACTION,
    EXPORT_SCHEMA,
    FORMATS,
    SOURCES,
    SPLITS,
    export_rows,
)
from feedback.imports import DEFAULT_RATER, ImportRejected, import_bytes

FORMAT_HELP = (
    "dpo: prompt/chosen/rejected for DPOTrainer; reward: the same pairs for RewardTrainer; "
    "kto: prompt/completion/label for KTOTrainer; sft: messages for SFTTrainer"
)
EXPORT_EPILOG = f"""\
Rows hold exactly the columns TRL's trainers take, in conversational form (schema
{EXPORT_SCHEMA}). The train/eval split is a hash of each prompt: a conversation is never
in both. The summary (rows, split sizes, snapshot hash) goes to stderr; Parquet files
also carry it in their schema metadata.

examples:
  flywheel export --format dpo --split train --out dpo-train.jsonl
  flywheel export --format kto --as parquet --out kto.parquet --since 2026-01-01
  flywheel export --format sft --rater alice | head
"""
IMPORT_EPILOG = """\
The file is JSON Lines or Parquet with the columns of --format (what `flywheel export`
writes, or a preference data set in TRL's conversational form). Every row is checked
first: one bad row and nothing is stored. Rows become ordinary exchanges and judgements
(model "import"); importing the same file again adds nothing.

examples:
  flywheel import dpo-train.jsonl --format dpo
  flywheel import ratings.parquet --format kto --rater annotators-2026-01
"""


def say(message: str) -> None:
    print(f"flywheel: {message}", file=sys.stderr, flush=True)


def _open_store(data_dir: Path) -> Store | None:
    db = db_path(data_dir)
    if not db.exists():
        say(f"no database at {db}: start `flywheel up` once, or pass --data-dir")
        return None
    return Store(db)


def _kind(args: argparse.Namespace) -> str:
    if args.kind:
        return args.kind
    return "parquet" if str(args.out).endswith(".parquet") else "jsonl"


def run_export(args: argparse.Namespace) -> int:
    kind = _kind(args)
    to_stdout = args.out == "-"
    if to_stdout and kind == "parquet" and sys.stdout.isatty():
        say("Parquet is binary: pass --out FILE.parquet, or redirect stdout")
        return 2
    store = _open_store(args.data_dir)
    if store is None:
        return 2
    try:
        export = export_rows(
            store,
            args.format,
            split=args.split,
            since=args.since,
            model=args.model,
            rater=args.rater,
            eval_fraction=args.eval_fraction,
        )
    except ValueError as exc:
        say(str(exc))
        return 2
    finally:
        store.close()
    if not export.rows:
        filtered = args.since or args.model or args.rater or args.split != "all"
        fix = " or loosen --since/--model/--rater/--split" if filtered else ""
        say(f"no {args.format} rows to export: {SOURCES[args.format]} first{fix}")
        return 2
    if to_stdout:
        write_export(export, sys.stdout.buffer, kind)
        sys.stdout.buffer.flush()
    else:
        _write_atomically(Path(args.out), lambda f: write_export(export, f, kind))
    counts = export.counts
    left_out = f", {counts['contested']} contested pairs left out" if counts["contested"] else ""
    say(
        f"{len(export.rows)} {args.format} rows ({args.split}; train {counts['train']}, "
        f"eval {counts['eval']}{left_out}) -> {'stdout' if to_stdout else args.out}; "
        f"snapshot {export.snapshot[:16]}, schema {export.schema}"
    )
    return 0


def _write_atomically(path: Path, write) -> None:
    """Write beside `path`, then rename: a reader never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run_import(args: argparse.Namespace) -> int:
    try:
        data = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        say(f"cannot read {args.file}: {exc.strerror}; check the path")
        return 2
    store = _open_store(args.data_dir)
    if store is None:
        return 2
    try:
        report = import_bytes(store, args.format, data, rater=args.rater)
    except ImportRejected as exc:
        say(f"nothing imported from {args.file}: {exc.total} problem(s); fix them and retry")
        for error in exc.errors:
            print(f"  {error}", file=sys.stderr)
        if exc.total > len(exc.errors):
            print(f"  … and {exc.total - len(exc.errors)} more", file=sys.stderr)
        return 2
    finally:
        store.close()
    judgements = report.comparisons + report.ratings
    say(
        f"imported {report.rows} {args.format} rows from {args.file}: {report.exchanges} new "
        f"exchanges, {judgements} new judgements, {report.duplicates} already stored"
    )
    return 0


def add_export_parsers(sub: argparse._SubParsersAction) -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    export = sub.add_parser(
        "export",
        help="write training data (dpo, kto, reward, sft) in TRL's formats",
        description="Write stored judgements as a training file in TRL's formats.",
        epilog=EXPORT_EPILOG,
        formatter_class=formatter,
    )
    export.add_argument("--format", required=True, choices=FORMATS, help=FORMAT_HELP)
    export.add_argument(
        "--split", choices=SPLITS, default="all", help="which split (default: %(default)s)"
    )
    export.add_argument(
        "--as",
        dest="kind",
        choices=KINDS,
        help="file kind (default: parquet when --out ends in .parquet, else jsonl)",
    )
    export.add_argument("--out", default="-", help="file to write, or - for stdout (default)")
    export.add_argument("--since", help="only judgements made at or after this ISO 8601 time")
    export.add_argument("--model", help="only answers of this model (requested or engine name)")
    export.add_argument("--rater", help="only this rater's judgements")
    export.add_argument(
        "--eval-fraction",
        type=float,
        default=DEFAULT_EVAL_FRACTION,
        help="share of prompts in the eval split (default: %(default)s)",
    )
    add_data_dir_argument(export)
    export.set_defaults(func=run_export)

    imp = sub.add_parser(
        "import",
        help="store a training file (dpo, kto, reward, sft) as judgements",
        description="Store a JSON Lines or Parquet training file as exchanges and judgements.",
        epilog=IMPORT_EPILOG,
        formatter_class=formatter,
    )
    imp.add_argument("file", help="JSON Lines or Parquet file, or - for stdin")
    imp.add_argument("--format", required=True, choices=FORMATS, help=FORMAT_HELP)
    imp.add_argument(
        "--rater",
        default=DEFAULT_RATER,
        help="recorded as the rater of every row (default: %(default)s)",
    )
    add_data_dir_argument(imp)
    imp.set_defaults(func=run_import)
