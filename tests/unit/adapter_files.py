"""Adapter folders written by hand, as PEFT's `save_pretrained` lays them out: a config and
one safetensors file. Each test module picks its base model and default weights."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from safetensors.torch import save_file


def write_adapter(
    path: Path,
    weights: dict,
    base_model: str,
    target_modules: Sequence[str] = ("q_proj",),
    **config,
) -> Path:
    """`adapter_config.json` (LoRA r8, alpha 16; `config` overrides any key) and the weights."""
    path.mkdir(parents=True, exist_ok=True)
    cfg = {
        "peft_type": "LORA",
        "r": 8,
        "lora_alpha": 16,
        "base_model_name_or_path": base_model,
        "target_modules": list(target_modules),
        **config,
    }
    (path / "adapter_config.json").write_text(json.dumps(cfg))
    save_file(weights, str(path / "adapter_model.safetensors"))
    return path
