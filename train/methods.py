"""The training methods by name, and their parameters from a config file and command-line overrides.

Every method has the same shape: a params dataclass (`TrainParams` + its own knobs) and
`train(model_path, train_rows, eval_rows, out_dir, params, on_log, init_adapter) -> metrics`.
Parameters come, lowest priority first, from the dataclass defaults, a YAML/JSON `--config` file,
then the command line (as in TRL's scripts).

Why not `HfArgumentParser` / `trl.TrlParser`, which turn dataclasses into flags the same way
(`metadata={"help": ...}`): `flywheel train` offers one set of flags for all four methods, the
method chosen on the same command line, and a field several methods share (`epochs`,
`learning_rate`) has a default per method. HfArgumentParser adds each dataclass's fields as
their own flags (two dataclasses with one field name collide in argparse) and fills defaults in
at parse time, so the recipe (train/recipe.py) could not tell a flag the user set from a default.
Here unset flags stay None and `given_names` reports what was set.
"""

from __future__ import annotations

import argparse
import json
import typing
from collections.abc import Callable
from dataclasses import MISSING, dataclass, fields
from pathlib import Path
from typing import Any

from train import dpo, kto, reward, sft
from train.lora import TrainParams


@dataclass(frozen=True)
class Method:
    name: str
    params: type[TrainParams]
    train: Callable[..., dict[str, Any]]
    rows: str  # the row format `train` takes (TRL 1.16, conversational)


METHODS: dict[str, Method] = {
    m.name: m
    for m in (
        Method("dpo", dpo.DpoParams, dpo.train, "{prompt, chosen, rejected}"),
        Method("kto", kto.KtoParams, kto.train, "{prompt, completion, label}"),
        Method("reward", reward.RewardParams, reward.train, "{prompt, chosen, rejected}"),
        Method("sft", sft.SftParams, sft.train, "{messages}"),
    )
}


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"unknown method {name!r}: choose one of {', '.join(METHODS)}") from None


def _field_type(cls: type, name: str) -> type:
    """The field's type, `X` for `X | None`."""
    hint = typing.get_type_hints(cls)[name]
    args = [a for a in typing.get_args(hint) if a is not type(None)]
    return args[0] if args else hint


def _coerce(kind: type, value: Any, name: str) -> Any:
    if value is None:
        return None
    try:
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("true", "false", "yes", "no", "1", "0"):
                raise ValueError(value)
            return value.lower() in ("true", "yes", "1")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)  # YAML reads 5e-4 as a string: float() takes it
    except (TypeError, ValueError):
        raise ValueError(f"{name}: {value!r} is not a {kind.__name__}") from None


def read_config(path: str | Path) -> dict[str, Any]:
    """A YAML or JSON mapping of parameter names (`lora_r` or `lora-r`) to values."""
    import yaml

    text = Path(path).read_text()
    data = json.loads(text) if str(path).endswith(".json") else yaml.safe_load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a config file holds a mapping of parameter names to values")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def load_params(
    method: str, config: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainParams:
    """The method's params: defaults, then the config file, then `overrides` (None: not given).

    A config file may name its method (`method: dpo`); it must then be this one. Unknown names
    are refused rather than ignored, so a typo never silently trains with a default.
    """
    cls = get(method).params
    values = read_config(config) if config else {}
    named = values.pop("method", method)
    if named != method:
        raise ValueError(f"{config} is a config for {named!r}, not {method!r}")
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"unknown {method} parameters: {', '.join(unknown)}")
    values.update({k: v for k, v in (overrides or {}).items() if k in names and v is not None})
    return cls(**{k: _coerce(_field_type(cls, k), v, k) for k, v in values.items()})


def given_names(
    method: str, config: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> set[str]:
    """The parameters the config file or `overrides` set: the recipe (train/recipe.py) leaves
    them as given."""
    names = {f.name for f in fields(get(method).params)}
    from_config = set(read_config(config)) if config else set()
    from_overrides = {k for k, v in (overrides or {}).items() if v is not None}
    return (from_config | from_overrides) & names


def param_names() -> set[str]:
    """Every training parameter any method has (the flags `add_all_params_arguments` adds)."""
    return {f.name for method in METHODS.values() for f in fields(method.params)}


def add_all_params_arguments(parser: argparse.ArgumentParser) -> None:
    """One `--flag` per parameter of any method (the method is chosen on the same line).

    A parameter whose default differs between methods lists each method's default.
    """
    by_name: dict[str, list[tuple[str, Any]]] = {}
    for method in METHODS.values():
        for f in fields(method.params):
            by_name.setdefault(f.name, []).append((method.name, f))
    for name, entries in by_name.items():
        first = entries[0][1]
        defaults = {m: (f.default if f.default is not MISSING else None) for m, f in entries}
        if len(entries) == len(METHODS) and len({repr(v) for v in defaults.values()}) == 1:
            default = f"default: {first.default}"
        else:
            default = "; ".join(f"{m}: {v}" for m, v in defaults.items())
        kind = _field_type(get(entries[0][0]).params, name)
        help_text = f"{first.metadata['help']} ({default})".replace("%", "%%")
        flag = "--" + name.replace("_", "-")
        if kind is bool:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, help=help_text)
        else:
            parser.add_argument(flag, type=kind, metavar=kind.__name__.upper(), help=help_text)
