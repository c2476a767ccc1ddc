"""Is this folder a LoRA adapter the engine can serve? Checked before the engine ever sees it.

vLLM's LoRA support has limits (FACTS.md): no DoRA, no `modules_to_save`, no resized
embeddings, rank <= `--max-lora-rank`. A folder that breaks one of them can fail every request
in flight once loaded (vLLM #4879), so it is refused here with a message naming the fix.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from safetensors import safe_open

from serve.errors import AdapterRejected

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError:
        msg = f"{path} has no {CONFIG_FILE}: is it a PEFT adapter folder?"
        raise AdapterRejected(msg) from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise AdapterRejected(f"{path / CONFIG_FILE} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterRejected(f"{path / CONFIG_FILE} must hold a JSON object")
    return config


def _check_config(config: dict[str, Any], base_model: str, max_rank: int) -> None:
    if config.get("peft_type") != "LORA":
        raise AdapterRejected(f"only LoRA adapters are served, this is {config.get('peft_type')}")
    if config.get("use_dora"):
        raise AdapterRejected("DoRA adapters are not supported by vLLM; train with use_dora=False")
    if config.get("modules_to_save"):
        raise AdapterRejected(
            "modules_to_save is not supported by vLLM; train without fully-trained modules"
        )
    try:
        rank = int(config.get("r") or 0)
    except (TypeError, ValueError):
        rank = 0
    if not 0 < rank <= max_rank:
        raise AdapterRejected(
            f"LoRA rank {config.get('r')} is outside 1..{max_rank} (the engine's --max-lora-rank)"
        )
    declared = str(config.get("base_model_name_or_path") or "")
    if declared and Path(declared).name != Path(base_model).name:
        raise AdapterRejected(
            f"adapter was trained on {declared!r}, the engine serves {base_model!r}"
        )


def base_module_names(base_model: str) -> set[str] | None:
    """Leaf module names of the base model's weights (`q_proj`, ...); None if not a local folder."""
    folder = Path(base_model)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    names: set[str] = set()
    for file in files:
        with safe_open(str(file), framework="pt") as f:
            keys = f.keys()  # a safetensors handle is not iterable itself
            names.update(part for key in keys for part in key.split(".")[:-1])
    return names


def _check_targets(config: dict[str, Any], base_modules: set[str] | None) -> None:
    targets = config.get("target_modules")
    if base_modules is None or not isinstance(targets, list):
        return  # a regex or "all-linear" was resolved by PEFT at training time
    unknown = sorted(set(targets) - base_modules)
    if unknown:
        raise AdapterRejected(f"target modules {unknown} do not exist in the base model")


def _check_files(path: Path) -> list[str]:
    root = path.resolve()
    for entry in path.rglob("*"):
        if entry.is_symlink():
            raise AdapterRejected(f"{entry} is a symbolic link; copy the real file into the folder")
        if not entry.resolve().is_relative_to(root):
            raise AdapterRejected(f"{entry} lies outside the adapter folder")
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise AdapterRejected(f"{path} has no {WEIGHTS_FILE} (pickled .bin weights are refused)")
    try:
        with safe_open(str(weights), framework="pt") as f:
            names = list(f.keys())
    except Exception as exc:
        raise AdapterRejected(f"{weights} cannot be read as safetensors: {exc}") from None
    if not names:
        raise AdapterRejected(f"{weights} holds no tensors")
    if any("embed_tokens" in n or "lm_head" in n for n in names):
        raise AdapterRejected("adapters that change embeddings or lm_head are not supported")
    return names


def validate_adapter(
    path: Path, base_model: str, max_rank: int, base_modules: set[str] | None = None
) -> dict[str, Any]:
    """Return the adapter config, or raise `AdapterRejected` naming the problem and the fix."""
    if not path.is_dir():
        raise AdapterRejected(f"{path} is not a folder; give the folder that holds {CONFIG_FILE}")
    config = _read_config(path)
    _check_config(config, base_model, max_rank)
    _check_targets(config, base_modules)
    _check_files(path)
    return config


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
