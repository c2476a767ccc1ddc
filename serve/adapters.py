"""The adapter registry: validate a LoRA folder, keep a managed copy, load it into the engine.

Rules from FACTS.md: every version gets its own engine name (`name@3`), since reloading new
weights under an old name can serve stale prefix-cache entries; vLLM's LoRA does not support
DoRA, `modules_to_save` or resized embeddings, and the rank must fit `--max-lora-rank`, so
such folders are refused before the engine ever sees them; loads are serialised, and a probe
request proves the engine can answer with the adapter before it is reported as loaded.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import httpx
from safetensors import safe_open

from feedback import Store
from serve.errors import AdapterRejected, EngineUnavailable, UnknownModel

log = logging.getLogger("flywheel.adapters")

WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"
BASE_ALIASES = ("base",)


def validate_adapter(path: Path, base_model: str, max_rank: int) -> dict[str, Any]:
    """Return the adapter config, or raise `AdapterRejected` naming the problem and the fix."""
    if not path.is_dir():
        raise AdapterRejected(f"{path} is not a folder; give the folder that holds {CONFIG_FILE}")
    try:
        config = json.loads((path / CONFIG_FILE).read_text())
    except FileNotFoundError:
        raise AdapterRejected(
            f"{path} has no {CONFIG_FILE}: is it a PEFT adapter folder?"
        ) from None
    except json.JSONDecodeError as exc:
        raise AdapterRejected(f"{path / CONFIG_FILE} is not valid JSON: {exc}") from None
    if config.get("peft_type") != "LORA":
        raise AdapterRejected(f"only LoRA adapters are served, this is {config.get('peft_type')}")
    if config.get("use_dora"):
        raise AdapterRejected("DoRA adapters are not supported by vLLM; train with use_dora=False")
    if config.get("modules_to_save"):
        raise AdapterRejected(
            "modules_to_save is not supported by vLLM; train without fully-trained modules"
        )
    rank = int(config.get("r") or 0)
    if not 0 < rank <= max_rank:
        raise AdapterRejected(
            f"LoRA rank {rank} is outside 1..{max_rank} (the engine's --max-lora-rank)"
        )
    declared = str(config.get("base_model_name_or_path") or "")
    if declared and Path(declared).name != Path(base_model).name:
        raise AdapterRejected(
            f"adapter was trained on {declared!r}, the engine serves {base_model!r}"
        )
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise AdapterRejected(f"{path} has no {WEIGHTS_FILE} (pickled .bin weights are refused)")
    try:
        with safe_open(str(weights), framework="pt") as f:
            names = list(f.keys())
    except Exception as exc:
        raise AdapterRejected(f"{weights} cannot be read as safetensors: {exc}") from None
    if any("embed_tokens" in n or "lm_head" in n for n in names):
        raise AdapterRejected("adapters that change embeddings or lm_head are not supported")
    return config


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class AdapterRegistry:
    """Adapters recorded in the store and loaded into the engine under `name@version`."""

    def __init__(
        self,
        store: Store,
        root: Path,
        base_name: str,
        base_model: str,
        max_rank: int,
        engine_url: str | None = None,
    ):
        self.store = store
        self.root = root
        self.base_name = base_name
        self.base_model = base_model
        self.max_rank = max_rank
        self.engine_url = engine_url
        self.loaded: set[str] = set()
        self._lock = asyncio.Lock()  # one load/unload at a time (vLLM issue #13698)

    # -- names -----------------------------------------------------------------------------

    def resolve(self, model: str) -> str:
        """Map a requested model name to the engine's name for it."""
        if model == self.base_name or model in BASE_ALIASES:
            return self.base_name
        rows = self.store.adapters()
        if model == "live":
            live = [r for r in rows if r["status"] == "live"]
            return live[-1]["engine_name"] if live else self.base_name
        by_engine_name = {r["engine_name"]: r for r in rows}
        if model in by_engine_name:
            return model
        versions = [r for r in rows if r["name"] == model]
        if versions:
            live = [r for r in versions if r["status"] == "live"]
            return (live or versions)[-1]["engine_name"]
        known = [self.base_name, *sorted({r["name"] for r in rows})]
        raise UnknownModel(
            f"the model {model!r} does not exist; available: {', '.join(known)}", param="model"
        )

    def model_cards(self, created: int) -> list[dict[str, Any]]:
        """Extra `/v1/models` entries: each adapter by its plain name, pointing at its version."""
        cards, seen = [], set()
        for row in reversed(self.store.adapters()):
            if row["name"] in seen:
                continue
            seen.add(row["name"])
            cards.append(
                {
                    "id": row["name"],
                    "object": "model",
                    "created": created,
                    "owned_by": "flywheel",
                    "root": self.resolve(row["name"]),
                    "parent": self.base_name,
                }
            )
        return cards

    # -- registration ----------------------------------------------------------------------

    async def register(self, name: str, source: Path, **lineage: Any) -> dict[str, Any]:
        """Validate, copy into the managed store, load into the engine, record as candidate."""
        source = source.resolve()
        config = validate_adapter(source, self.base_model, self.max_rank)
        version = self.store.next_adapter_version(name)
        engine_name = f"{name}@{version}"
        target = self.root / name / f"v{version}"
        if target.exists():
            shutil.rmtree(target)
        target.parent.mkdir(parents=True, exist_ok=True)
        staging = target.with_name(target.name + ".tmp")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, staging)
        staging.rename(target)
        try:
            if self.engine_url:
                await self.load(engine_name, target)
        except Exception:
            shutil.rmtree(target, ignore_errors=True)
            raise
        row = {
            "name": name,
            "version": version,
            "engine_name": engine_name,
            "base_model": self.base_name,
            "path": str(target),
            "sha256": sha256_file(target / WEIGHTS_FILE),
            "status": "candidate",
            "hyperparameters": {"r": config.get("r"), "lora_alpha": config.get("lora_alpha")},
            **lineage,
        }
        stored = self.store.add_adapter(row)
        log.info("registered adapter %s from %s", engine_name, source)
        return stored

    async def load(self, engine_name: str, path: Path) -> None:
        """Load into the engine, then probe: an adapter counts as loaded only once it answers."""
        async with self._lock, httpx.AsyncClient(base_url=self.engine_url, timeout=120) as client:
            try:
                resp = await client.post(
                    "/v1/load_lora_adapter", json={"lora_name": engine_name, "lora_path": str(path)}
                )
            except httpx.HTTPError as exc:
                msg = f"engine unreachable while loading {engine_name}: {exc}"
                raise EngineUnavailable(msg) from exc
            if resp.status_code != 200 and "already been loaded" not in resp.text:
                raise AdapterRejected(f"the engine refused {engine_name}: {resp.text[:500]}")
            probe = await client.post(
                "/v1/completions",
                json={"model": engine_name, "prompt": "Hello", "max_tokens": 1},
            )
            if probe.status_code != 200:
                await client.post("/v1/unload_lora_adapter", json={"lora_name": engine_name})
                raise AdapterRejected(f"{engine_name} loaded but cannot answer: {probe.text[:500]}")
        self.loaded.add(engine_name)

    async def load_all(self) -> None:
        """After the engine (re)starts: it keeps no adapters, so load every registered one."""
        self.loaded.clear()
        for row in self.store.adapters():
            try:
                await self.load(row["engine_name"], Path(row["path"]))
            except Exception as exc:  # one bad adapter must not keep the others out
                log.error("could not re-load %s: %s", row["engine_name"], exc)
