"""Settings of `flywheel up`, built from the command line in `main()`, never at import."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_MAX_LORA_RANK = 16  # the engine's --max-lora-rank; adapters above it are refused


def default_data_dir() -> Path:
    """`FLYWHEEL_HOME` roots all state (tests point it at a temp dir), else ./data."""
    return Path(os.environ.get("FLYWHEEL_HOME") or "data")


def add_data_dir_argument(parser: argparse.ArgumentParser) -> None:
    """`--data-dir`, shared by every command that reads or writes flywheel's state."""
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=default_data_dir(),
        help="where the database, adapters and logs live (default: $FLYWHEEL_HOME or ./data)",
    )


@dataclass
class Settings:
    model: str  # a local HF folder or a hub id the engine can load
    served_model_name: str  # the base model's name in /v1/models
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=default_data_dir)
    engine_url: str | None = None  # an external vLLM: no supervisor then
    engine_port: int = 0  # 0: pick a free port
    dtype: str = "auto"  # auto: bfloat16 where the hardware has it, else float32
    max_model_len: int = 2048
    max_lora_rank: int = DEFAULT_MAX_LORA_RANK
    max_loras: int = 4
    engine_args: list[str] = field(default_factory=list)  # passed verbatim to vLLM
    ui: bool = True

    @property
    def db_path(self) -> Path:
        return self.data_dir / "flywheel.db"

    @property
    def adapters_dir(self) -> Path:
        return self.data_dir / "adapters"

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"
