"""After an engine restart: adapters waiting to be re-loaded answer 503 with Retry-After (not a
404 as if deleted), and /health does not count the dead engine's adapters as loaded."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from feedback import Store
from serve.adapters import AdapterRegistry
from serve.config import Settings
from serve.engine import Engine
from serve.errors import EngineUnavailable, UnknownModel
from serve.gateway import create_app

BASE = "Base-1"
ENGINE_404 = json.dumps({"error": {"message": "The model `tone@1` does not exist."}}).encode()


def add_adapter(store: Store, name: str, version: int = 1, status: str = "candidate") -> None:
    engine_name = f"{name}@{version}"
    store.add_adapter(
        {"name": name, "version": version, "engine_name": engine_name, "status": status,
         "path": f"/managed/{engine_name}"}
    )  # fmt: skip


def fake_loads(registry: AdapterRegistry, monkeypatch, gate: asyncio.Event | None = None):
    """`load` without an engine: records the name, optionally waits for `gate` first."""
    loads: list[str] = []

    async def load(engine_name: str, path: Path) -> None:
        if gate is not None:
            await gate.wait()
        loads.append(engine_name)
        registry.loaded.add(engine_name)

    monkeypatch.setattr(registry, "load", load)
    return loads


@pytest.fixture
def registry(tmp_path) -> AdapterRegistry:
    store = Store(None)
    add_adapter(store, "tone", status="live")
    add_adapter(store, "new")
    registry = AdapterRegistry(
        store,
        tmp_path,
        BASE,
        f"/m/{BASE}",
        max_rank=16,
        engine_url="http://127.0.0.1:9",
        keys_exist=lambda: False,
    )
    registry.loaded = {"tone@1", "new@1"}  # what the engine had before it died
    return registry


def test_adapters_waiting_for_their_reload_answer_503_until_loaded(registry, monkeypatch):
    async def scenario() -> None:
        gate = asyncio.Event()
        fake_loads(registry, monkeypatch, gate)
        reload = asyncio.create_task(registry.load_all())
        await asyncio.sleep(0)  # load_all has started and waits on the first load
        assert registry.loaded == set()
        for model in ("tone", "tone@1", "live", "new"):
            with pytest.raises(EngineUnavailable, match="being loaded again") as caught:
                registry.resolve_served(model)
            assert caught.value.status == 503 and "Retry-After" in caught.value.headers
        assert registry.resolve_served("base") == BASE  # the base model needs no load
        with pytest.raises(UnknownModel):
            registry.resolve_served("gpt-5")  # unknown stays unknown
        gate.set()
        await reload
        assert registry.loaded == {"tone@1", "new@1"}
        assert registry.resolve_served("live") == "tone@1"
        assert registry.resolve_served("new") == "new@1"

    asyncio.run(scenario())


def test_an_adapter_that_fails_to_reload_is_no_longer_pending(registry, monkeypatch):
    async def load(engine_name: str, path: Path) -> None:
        if engine_name == "new@1":
            raise RuntimeError("the engine refused it")
        registry.loaded.add(engine_name)

    monkeypatch.setattr(registry, "load", load)
    asyncio.run(registry.load_all())
    assert registry.loaded == {"tone@1"}
    assert registry.resolve_served("new") == "new@1"  # the engine's own answer, not 503 forever


def test_engine_lost_forgets_what_the_dead_engine_had(registry):
    registry.engine_lost()
    assert registry.loaded == set()
    with pytest.raises(EngineUnavailable):
        registry.resolve_served("tone")


def test_the_supervisor_tells_the_registry_before_restarting(tmp_path, monkeypatch):
    engine = Engine(Settings("/m/model", BASE, data_dir=tmp_path, ui=False))
    events: list[str] = []

    class DeadProcess:
        pid, returncode = -1, 1

        def poll(self) -> int:
            return 1

        def wait(self, timeout: float | None = None) -> int:
            return 1

    async def respawn() -> None:
        events.append("spawn")
        engine._stopping = True  # one restart is enough

    async def no_sleep(_: float) -> None:
        return None

    async def on_ready() -> None:
        events.append("ready")

    engine._proc = DeadProcess()  # type: ignore[assignment]
    monkeypatch.setattr(engine, "_kill_group", lambda *a: None)
    monkeypatch.setattr(engine, "_spawn_and_wait", respawn)
    monkeypatch.setattr("serve.engine.asyncio.sleep", no_sleep)
    engine.on_down = lambda: events.append("down")
    engine.on_ready = on_ready
    asyncio.run(engine._supervise())
    assert events == ["down", "spawn", "ready"]


def test_the_gateway_answers_503_with_retry_after_and_health_lists_nothing(tmp_path, monkeypatch):
    settings = Settings(
        f"/m/{BASE}", BASE, data_dir=tmp_path / "data", ui=False, engine_url="http://127.0.0.1:9"
    )
    app = create_app(settings)
    services = app.state.services
    add_adapter(services.store, "tone")
    services.registry.refresh()
    services.registry.loaded = {"tone@1"}
    fake_loads(services.registry, monkeypatch)
    sent: list[str] = []

    async def fresh_engine(path: str, body: dict) -> tuple[int, bytes]:
        """A restarted engine: it answers, but knows no adapter until it is loaded again."""
        sent.append(body["model"])
        if body["model"] not in services.registry.loaded | {BASE}:
            return 404, ENGINE_404
        return 200, json.dumps({"id": "cmpl-1", "choices": [], "model": body["model"]}).encode()

    monkeypatch.setattr(services.engine_client, "post", fresh_engine)
    body = {"model": "tone", "messages": [{"role": "user", "content": "hi"}]}
    with TestClient(app, base_url="http://127.0.0.1") as client:
        services.registry.engine_lost()  # the supervisor saw the engine die
        resp = client.post("/v1/chat/completions", json=body)
        assert resp.status_code == 503 and resp.headers["Retry-After"]
        error = resp.json()["error"]
        assert error["code"] == "engine_unavailable" and "tone@1" in error["message"]
        assert sent == []  # never sent to an engine that does not have it
        assert client.get("/health").json()["adapters_loaded"] == []
        asyncio.run(services.registry.load_all())
        assert client.post("/v1/chat/completions", json=body).status_code == 200
        assert sent == ["tone@1"]
