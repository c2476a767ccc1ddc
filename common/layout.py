"""Where flywheel's state lives in its data folder: one place for every path two packages share.

<data dir>/flywheel.db                      the store (feedback/)
<data dir>/adapters/                        the adapters the engine serves (serve/)
<data dir>/logs/                            the engine's and the jobs' logs
<data dir>/runs/job-N/                      a training job's folder (train/ writes it)
<data dir>/runs/job-N/adapter/              its finished adapter (renamed from adapter.tmp)
<data dir>/runs/job-N/registration.json     what the gateway registers once the job ends
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

DB_NAME = "flywheel.db"
REGISTRATION_FILE = "registration.json"  # written by the job next to the finished adapter


def default_data_dir() -> Path:
    """Where all state lives unless `--data-dir` says otherwise: `$FLYWHEEL_HOME`, else the
    per-user `$XDG_DATA_HOME/flywheel` (~/.local/share/flywheel). One place whatever the current
    directory: a default relative to it started an empty database wherever flywheel was run."""
    if home := os.environ.get("FLYWHEEL_HOME"):
        return Path(home).expanduser()
    share = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(share).expanduser() / "flywheel"


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """`--data-dir`, shared by every command that reads or writes flywheel's state."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where the database, adapters and logs live (default: $FLYWHEEL_HOME, else "
        "~/.local/share/flywheel; now %(default)s)",
    )


def db_path(data_dir: Path) -> Path:
    return data_dir / DB_NAME


def adapters_dir(data_dir: Path) -> Path:
    """The managed copies of registered adapters, which the engine loads."""
    return data_dir / "adapters"


def job_dir(data_dir: Path, job_id: int) -> Path:
    """A training job's folder: its log, its adapter, its registration."""
    return data_dir / "runs" / f"job-{job_id}"
