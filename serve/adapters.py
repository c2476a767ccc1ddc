"""The adapter registry: versions, the `live` alias, and what the engine has loaded.

Every version gets its own engine name (`name@3`): reloading new weights under an old name can
serve stale prefix-cache entries (vLLM #42125). Loads and unloads are serialised (vLLM #13698),
and a probe request proves that the engine answers with an adapter before it counts as loaded.
Names are resolved from an in-memory table rebuilt after each change, never from SQLite per
request.

Registration trusts nothing in the folder: it is validated where it lies (serve/adapter_checks.py),
copied without following links and without pickle files, and the copy is validated again before
the engine is given its path, so a folder changed mid-registration cannot slip through.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import httpx

from common.layout import adapters_dir, db_path
from feedback import Store
from feedback.api_keys import ApiKeys
from serve.adapter_checks import (
    WEIGHTS_FILE,
    AdapterLimits,
    BaseWeights,
    describe_base,
    validate_adapter,
)
from serve.adapter_copy import copy_folder, sha256_file
from serve.config import DEFAULT_MAX_LORA_RANK
from serve.errors import AdapterRejected, Conflict, EngineUnavailable, UnknownModel

log = logging.getLogger("flywheel.adapters")

BASE_ALIAS, LIVE_ALIAS = "base", "live"
RELOAD_RETRY_AFTER_S = 2  # re-loading one adapter (load + probe) takes about a second


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
        engine_headers: dict[str, str] | None = None,
        on_load: Callable[[str], None] | None = None,
        adapter_roots: Sequence[Path] = (),
        limits: AdapterLimits | None = None,
        *,
        keys_exist: Callable[[], bool],
    ):
        self.store = store
        # Whether any API key is active: then only the data dir and the given roots are
        # accepted (`allowed_roots`). Asked at each registration: a key may be made any time.
        self.keys_exist = keys_exist
        self.adapter_roots = [Path(p) for p in adapter_roots]  # besides the data dir
        self.limits = limits or AdapterLimits()
        self.on_load = on_load  # called with "ok" or "failed" after every load attempt
        self.root = root
        self.base_name = base_name
        self.base_model = base_model
        self.max_rank = max_rank
        self.engine_url = engine_url
        self.engine_headers = engine_headers or {}  # the engine's API key
        self.loaded: set[str] = set()
        # Registered versions a fresh engine does not have yet: 503 until load_all reaches them.
        self.reloading: set[str] = set()
        self._engine_lock = asyncio.Lock()  # one load/unload at a time
        self._change_lock = asyncio.Lock()  # one registration/promotion at a time
        self._base: BaseWeights | None = None
        self._routes: dict[str, str] = {}
        self.refresh()

    # -- names -----------------------------------------------------------------------------

    def refresh(self) -> None:
        """Rebuild the name table from the store (after every change the registry makes)."""
        rows = self.store.adapters()
        live = self.store.live_adapter()
        routes = {self.base_name: self.base_name, BASE_ALIAS: self.base_name}
        for row in rows:  # oldest first: a name ends up at its newest version ...
            routes[row["engine_name"]] = row["engine_name"]
            routes[row["name"]] = row["engine_name"]
        if live:  # ... unless one of its versions is live
            routes[live["name"]] = live["engine_name"]
        routes[LIVE_ALIAS] = live["engine_name"] if live else self.base_name
        self._routes = routes

    def resolve(self, model: str) -> str:
        """Map a requested model name to the engine's name for it."""
        try:
            return self._routes[model]
        except KeyError:
            names = sorted({n for n in self._routes if "@" not in n} - {self.base_name})
            raise UnknownModel(
                f"the model {model!r} does not exist; available: "
                f"{', '.join([self.base_name, *names])}",
                param="model",
            ) from None

    def resolve_served(self, model: str) -> str:
        """`resolve`, for a request the engine must answer now.

        A restarted engine keeps no adapters: until `load_all` has loaded one again it would
        answer 404, as if the adapter had been deleted. It is only briefly away, so say so.
        """
        engine_name = self.resolve(model)
        if engine_name in self.reloading:
            raise EngineUnavailable(
                f"{engine_name} is being loaded again after an engine restart; retry shortly",
                retry_after=RELOAD_RETRY_AFTER_S,
            )
        return engine_name

    def model_cards(self, created: int) -> list[dict[str, Any]]:
        """`/v1/models` entries for aliases and adapter names, each pointing at its version."""
        return [
            {
                "id": name,
                "object": "model",
                "created": created,
                "owned_by": "flywheel",
                "root": target,
                "parent": None if target == self.base_name else self.base_name,
            }
            for name, target in self._routes.items()
            if name != self.base_name and "@" not in name
        ]

    # -- registration ----------------------------------------------------------------------

    def allowed_roots(self) -> list[Path] | None:
        """Folders adapters may be registered from; None (any readable folder) in local mode.

        Keyless local mode only runs on loopback, where the caller is someone on this machine.
        Once an API key exists, or an `--adapter-root` was given, only the data dir (the
        folder holding the managed store) and the given roots are accepted.
        """
        if not self.adapter_roots and not self.keys_exist():
            return None
        return [self.root.parent, *self.adapter_roots]

    def check_name(self, name: str) -> None:
        """Refuse a name that routing already gives a meaning: it would take that meaning over.

        `base`, `live` and the base model's name resolve to other models; an adapter registered
        under one would silently redirect every request for it. Compared without case, so that
        `Live` cannot pass for `live` in a list either.
        """
        reserved = (BASE_ALIAS, LIVE_ALIAS, self.base_name)
        if name.casefold() in {r.casefold() for r in reserved}:
            raise AdapterRejected(
                f"the adapter name {name!r} is reserved: {', '.join(reserved)} already name the "
                "base model and the live alias; choose another name",
                param="name",
            )

    def _validate(self, path: Path, roots: list[Path] | None) -> dict[str, Any]:
        return validate_adapter(
            path, self.base_model, self.max_rank, self._base, limits=self.limits, roots=roots
        )

    def _managed_copy(self, source: Path, digest: str) -> Path:
        """Content-addressed copy: the same weights are stored once, whatever their name."""
        target = self.root / "sha256" / digest
        if not (target / WEIGHTS_FILE).is_file():
            staging = target.with_name(digest + ".tmp")
            shutil.rmtree(staging, ignore_errors=True)
            try:
                try:
                    copy_folder(source, staging, self.limits)  # no links followed, no pickles
                except OSError as exc:  # a link or a special file swapped in after the checks
                    raise AdapterRejected(f"could not copy {source}: {exc}") from None
                if sha256_file(staging / WEIGHTS_FILE) != digest:
                    msg = f"{source} changed while it was registered; register it once complete"
                    raise AdapterRejected(msg)
                self._validate(staging, roots=None)  # what the engine will load, checked again
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            shutil.rmtree(target, ignore_errors=True)
            staging.rename(target)
        return target

    async def register(self, name: str, source: Path, **lineage: Any) -> dict[str, Any]:
        """Validate, copy into the managed store, load into the engine, record as candidate.

        Registering the same weights under the same name again returns the existing version.
        """
        self.check_name(name)
        source = Path(source)
        if self._base is None:
            self._base = await asyncio.to_thread(describe_base, self.base_model)
        # Everything is checked before anything is written or the engine is called.
        config = await asyncio.to_thread(self._validate, source, self.allowed_roots())
        digest = await asyncio.to_thread(sha256_file, source / WEIGHTS_FILE)
        async with self._change_lock:
            for row in self.store.adapters():
                if row["name"] == name and row["sha256"] == digest:
                    return row
            path = await asyncio.to_thread(self._managed_copy, source, digest)
            version = self.store.next_adapter_version(name)
            engine_name = f"{name}@{version}"
            if self.engine_url:
                await self.load(engine_name, path)
            row = {
                "name": name,
                "version": version,
                "engine_name": engine_name,
                "base_model": self.base_name,
                "path": str(path),
                "sha256": digest,
                "status": "candidate",
                "hyperparameters": {"r": config.get("r"), "lora_alpha": config.get("lora_alpha")},
                **lineage,
            }
            stored = self.store.add_adapter(row)
            self.refresh()
        log.info("registered %s from %s", engine_name, source)
        return stored

    # -- lifecycle -------------------------------------------------------------------------

    def _versions(self, name: str) -> list[dict[str, Any]]:
        if "@" in name:
            row = self.store.adapter(name)
            return [row] if row and row["status"] != "retired" else []
        return [r for r in self.store.adapters() if r["name"] == name]

    async def promote(self, name: str, version: int | None = None) -> dict[str, Any]:
        """Point `live` (and the adapter's name) at one version, atomically."""
        async with self._change_lock:
            versions = self._versions(f"{name}@{version}" if version else name)
            if not versions:
                raise UnknownModel(f"no adapter {name!r} to promote", param="name")
            target = versions[-1]
            if self.engine_url and target["engine_name"] not in self.loaded:
                raise Conflict(f"{target['engine_name']} is not loaded in the engine; re-register")
            previous = self.store.promote_adapter(target["engine_name"])
            self.refresh()
        log.info("promoted %s (was %s)", target["engine_name"], previous or self.base_name)
        return {"live": target["engine_name"], "previous": previous or self.base_name}

    async def rollback(self, name: str) -> dict[str, Any]:
        """Return `live` to the version live before the current one, and retire the current."""
        async with self._change_lock:
            current = self.store.live_adapter()
            if current is None or current["name"] != name:
                live = current["engine_name"] if current else self.base_name
                raise Conflict(f"{name!r} is not live (live is {live}); nothing to roll back")
            promotion = self.store.promotion_that_made_live(current["engine_name"])
            previous = promotion["previous"] if promotion else None
            if previous and (self.store.adapter(previous) or {}).get("status") == "retired":
                raise Conflict(f"the previous live version {previous} was deleted; promote one")
            self.store.promote_adapter(
                previous, kind="rollback", reason=f"rollback of {current['engine_name']}"
            )
            self.store.set_adapter_status(current["engine_name"], "retired")
            self.refresh()
        await self.unload(current["engine_name"])
        return {"live": previous or self.base_name, "retired": current["engine_name"]}

    async def delete(self, name: str) -> list[str]:
        """Retire an adapter (all its versions, or `name@N`) and unload it from the engine."""
        async with self._change_lock:
            versions = self._versions(name)
            if not versions:
                raise UnknownModel(f"no adapter {name!r}", param="name")
            live = [r["engine_name"] for r in versions if r["status"] == "live"]
            if live:
                raise Conflict(f"{live[0]} is live; promote another version or roll back first")
            for row in versions:
                self.store.set_adapter_status(row["engine_name"], "retired")
            self.refresh()
        for row in versions:
            await self.unload(row["engine_name"])
        return [row["engine_name"] for row in versions]

    # -- the engine ------------------------------------------------------------------------

    async def load(self, engine_name: str, path: Path) -> None:
        """Load into the engine, then probe: an adapter counts as loaded only once it answers."""
        try:
            await self._load(engine_name, path)
        except Exception:
            if self.on_load:
                self.on_load("failed")
            raise
        if self.on_load:
            self.on_load("ok")
        self.loaded.add(engine_name)

    async def _load(self, engine_name: str, path: Path) -> None:
        async with (
            self._engine_lock,
            httpx.AsyncClient(
                base_url=self.engine_url, timeout=120, headers=self.engine_headers
            ) as c,
        ):
            try:
                resp = await c.post(
                    "/v1/load_lora_adapter", json={"lora_name": engine_name, "lora_path": str(path)}
                )
                if resp.status_code != 200 and "already been loaded" not in resp.text:
                    raise AdapterRejected(f"the engine refused {engine_name}: {resp.text[:500]}")
                probe = await c.post(
                    "/v1/completions", json={"model": engine_name, "prompt": "Hi", "max_tokens": 1}
                )
                if probe.status_code != 200:
                    await c.post("/v1/unload_lora_adapter", json={"lora_name": engine_name})
                    msg = f"{engine_name} loaded but cannot answer: {probe.text[:500]}"
                    raise AdapterRejected(msg)
            except httpx.HTTPError as exc:
                msg = f"engine unreachable while loading {engine_name}: {exc}"
                raise EngineUnavailable(msg) from exc

    async def unload(self, engine_name: str) -> None:
        """Best effort: a retired adapter is never routed to, even if the engine keeps it."""
        self.loaded.discard(engine_name)
        if not self.engine_url:
            return
        async with (
            self._engine_lock,
            httpx.AsyncClient(
                base_url=self.engine_url, timeout=60, headers=self.engine_headers
            ) as c,
        ):
            try:
                await c.post("/v1/unload_lora_adapter", json={"lora_name": engine_name})
            except httpx.HTTPError as exc:
                log.warning("could not unload %s: %s", engine_name, exc)

    def engine_lost(self) -> None:
        """The engine died: what it had loaded is gone, and every version waits for `load_all`."""
        self.loaded.clear()
        self.reloading = {row["engine_name"] for row in self.store.adapters()}

    async def load_all(self) -> None:
        """After the engine (re)starts: it keeps no adapters, so load every registered one."""
        rows = self.store.adapters()
        self.loaded.clear()
        self.reloading = {row["engine_name"] for row in rows}
        for row in rows:
            try:
                await self.load(row["engine_name"], Path(row["path"]))
            except Exception as exc:  # one bad adapter must not keep the others out
                log.error("could not re-load %s: %s", row["engine_name"], exc)
            finally:  # loaded or not, it is no longer on its way: the engine's answer stands
                self.reloading.discard(row["engine_name"])


def register_offline(data_dir: Path, base_name: str, base_model: str, payload: dict) -> dict:
    """Record an adapter trained while no gateway runs (`flywheel train` without `up`): it is
    checked and copied as over HTTP, and the next `flywheel up` loads it."""
    store = Store(db_path(data_dir))
    registry = AdapterRegistry(
        store,
        root=adapters_dir(data_dir),
        base_name=base_name,
        base_model=base_model,
        max_rank=DEFAULT_MAX_LORA_RANK,  # what the next `flywheel up` will accept
        keys_exist=ApiKeys(store).any_active,  # the same folder rules as the next `up`
    )
    lineage = {k: v for k, v in payload.items() if k not in ("name", "path")}
    return asyncio.run(registry.register(payload["name"], Path(payload["path"]), **lineage))
