"""Settings of `flywheel up`, built from the command line in `main()`, never at import."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from common.layout import adapters_dir, db_path, default_data_dir

DEFAULT_MAX_LORA_RANK = 16  # the engine's --max-lora-rank; adapters above it are refused
VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # the values vLLM accepts for it
# Caps on what a caller can make the gateway read or the engine do (docs/security.md).
DEFAULT_MAX_ADAPTER_BYTES = 2 << 30  # an adapter folder's total size; r16 on a 7B model is ~80 MiB
DEFAULT_MAX_ADAPTER_FILES = 100  # entries in an adapter folder (files and sub-folders)
DEFAULT_MAX_BODY_BYTES = 4 << 20  # a JSON request body on /v1 (bulk import has its own cap)
DEFAULT_MAX_MESSAGES = 2_000  # messages in one chat completion request


ENGINE_KEY_ENV = "FLYWHEEL_ENGINE_API_KEY"
TRAIN_LIMITS = {"epochs": 20, "max_steps": 10_000, "batch_size": 64, "max_length": 4096,
                "threads": os.cpu_count() or 1}  # fmt: skip
"""The largest values an HTTP training job may ask for (`flywheel up --train-limit K=V` raises
one): a user with a key must not start a job that holds the machine for a day."""
DEFAULT_ARENA_BATTLES_PER_HOUR = 120  # one every 30 s, all hour: above what a careful rater reads


@dataclass
class Settings:
    model: str  # a local HF folder or a hub id the engine can load
    served_model_name: str  # the base model's name in /v1/models
    host: str = "127.0.0.1"
    port: int = 8000
    data_dir: Path = field(default_factory=default_data_dir)
    engine_url: str | None = None  # an external vLLM: no supervisor then
    # The engine's API key. Supervised: a random one unless given; external: the key it was
    # started with (`vllm serve --api-key`), if any. From $FLYWHEEL_ENGINE_API_KEY by default.
    engine_api_key: str | None = field(
        default_factory=lambda: os.environ.get(ENGINE_KEY_ENV) or None
    )
    engine_port: int = 0  # 0: pick a free port
    dtype: str = "auto"  # auto: bfloat16 where the hardware has it, else float32
    max_model_len: int = 2048
    max_lora_rank: int = DEFAULT_MAX_LORA_RANK
    max_loras: int = 4
    engine_args: list[str] = field(default_factory=list)  # passed verbatim to vLLM
    ui: bool = True
    # Folders adapters may be registered from besides the data dir. Enforced once an API key
    # exists, or as soon as one is given; in keyless local mode any readable folder is accepted.
    adapter_roots: list[Path] = field(default_factory=list)
    max_adapter_bytes: int = DEFAULT_MAX_ADAPTER_BYTES
    max_adapter_files: int = DEFAULT_MAX_ADAPTER_FILES
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_messages: int = DEFAULT_MAX_MESSAGES
    max_tokens_limit: int | None = None  # cap on max_tokens; None: the engine's max_model_len
    arena_battles_per_hour: int = DEFAULT_ARENA_BATTLES_PER_HOUR  # per user key; 0: no cap
    train_limits: dict[str, float] = field(default_factory=lambda: dict(TRAIN_LIMITS))

    @property
    def db_path(self) -> Path:
        return db_path(self.data_dir)

    @property
    def adapters_dir(self) -> Path:
        return adapters_dir(self.data_dir)

    @property
    def logs_dir(self) -> Path:
        return self.data_dir / "logs"

    @property
    def max_tokens_cap(self) -> int:
        """The largest `max_tokens` / `max_completion_tokens` a request may ask for."""
        return self.max_tokens_limit or self.max_model_len

    @property
    def public_url(self) -> str:
        return f"http://{self.host}:{self.port}"
