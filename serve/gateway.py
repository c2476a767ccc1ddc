"""The gateway: one FastAPI app in front of the engine, with the UI mounted at `/`.

`create_app` wires services onto `app.state`; nothing is built at import. `run_up` is
`flywheel up`: it starts the engine first, then serves the app, and always stops the engine
on the way out (Ctrl-C, SIGTERM, or a failure to bind the port).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI, Request
from fastapi.routing import APIRoute

from common.layout import DB_NAME, default_data_dir
from feedback import Store
from feedback.api_keys import ApiKeys
from feedback.arena import Arena
from serve.adapter_checks import AdapterLimits
from serve.adapters import AdapterRegistry
from serve.auth import ApiKeyAuth, is_loopback_name
from serve.config import Settings
from serve.engine import Engine, EngineFailed
from serve.engine_client import EngineClient
from serve.errors import (
    API_ERRORS,
    MethodNotAllowed,
    NotFound,
    error_responses,
    install_error_handlers,
)
from serve.exchange_log import ExchangeLogger
from serve.group_commit import GroupCommit
from serve.jobs import JobRunner
from serve.json_body import JsonBodies
from serve.metrics import GatewayMetrics, MetricsMiddleware
from serve.openapi import gateway_openapi
from serve.routes import adapters, arena, export, feedback, health, loop, openai, train
from serve.services import Services

log = logging.getLogger("flywheel.gateway")

KEEP_ALIVE_S = 75
"""How long an idle client connection stays open. Clients pool connections and reuse them
(httpx and so the OpenAI SDK: for 5 s); a server that closes at the same 5 s (uvicorn's
default) races them, and a request sent on a connection it is closing fails unread
(`httpx.ReadError`: seen from the simulated rater, 2026-12-03). Longer than the pools of
httpx (5 s) and aiohttp (15 s); browsers resend such a request themselves."""


def build_services(settings: Settings, engine: Engine | None = None) -> Services:
    store = Store(settings.db_path)
    keys = ApiKeys(store)
    engine = engine or Engine(settings)
    metrics = GatewayMetrics()
    registry = AdapterRegistry(
        store,
        root=settings.adapters_dir,
        base_name=settings.served_model_name,
        base_model=settings.model,
        max_rank=settings.max_lora_rank,
        engine_url=engine.url,
        engine_headers=engine.headers,
        on_load=lambda result: metrics.adapter_loads.labels(result).inc(),
        adapter_roots=settings.adapter_roots,
        limits=AdapterLimits(settings.max_adapter_bytes, settings.max_adapter_files),
        keys_exist=keys.any_active,
    )
    exchange_log = ExchangeLogger(
        store,
        on_logged=metrics.count_exchange,
        on_retry=metrics.exchange_log_retries.inc,
        on_dropped=metrics.exchanges_dropped.inc,
    )
    metrics.watch_queue(exchange_log.queue.qsize)
    return Services(
        settings=settings,
        store=store,
        keys=keys,
        engine=engine,
        registry=registry,
        exchange_log=exchange_log,
        engine_client=EngineClient(engine.url, engine.headers),
        metrics=metrics,
        arena=Arena(store),
        writes=GroupCommit(store),
        jobs=JobRunner(
            store,
            registry,
            settings.data_dir,
            settings.model,
            settings.train_limits,
            engine_api_key=engine.api_key,
        ),
    )


def create_app(settings: Settings, services: Services | None = None) -> FastAPI:
    services = services or build_services(settings)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        services.exchange_log.start()
        services.writes.start()
        services.jobs.start()
        await services.engine_client.start()
        yield
        await services.exchange_log.close()  # nothing acknowledged is dropped at shutdown
        await services.writes.close()
        await services.jobs.close()
        await services.engine_client.close()

    app = FastAPI(
        title="flywheel",
        description="OpenAI-compatible gateway that closes the fine-tuning loop.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.services = services
    # Starlette runs the last added first: metrics (sees every answer), auth, JSON bodies.
    app.add_middleware(JsonBodies, max_body_bytes=settings.max_body_bytes)
    # Keyless "local mode" only on loopback: a public gateway stays closed if its last key goes.
    local_mode = _is_loopback(settings.host)
    app.add_middleware(ApiKeyAuth, keys=services.keys, local_mode=local_mode)
    app.add_middleware(MetricsMiddleware, metrics=services.metrics)
    install_error_handlers(app)
    for module in (openai, feedback, export, arena, adapters, train, loop):
        app.include_router(module.router, responses=error_responses(*API_ERRORS))
    app.include_router(health.router)  # outside /v1: no keys, no body checks
    app.openapi = lambda: gateway_openapi(app, settings)

    @app.api_route(
        "/v1/{path:path}",
        methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
        include_in_schema=False,
    )
    async def unknown_route(path: str, request: Request) -> None:
        """Without this, unknown API paths would fall through to the UI mounted at `/`.

        It also matches a known path asked with another method, which is a 405, not a 404.
        """
        allowed = sorted(
            method
            for route in app.router.routes
            if isinstance(route, APIRoute)
            and route.endpoint is not unknown_route
            and route.path_regex.match(request.url.path)
            for method in route.methods
        )
        if allowed:
            raise MethodNotAllowed(
                f"/v1/{path} does not take {request.method}; it takes {', '.join(allowed)}",
                headers={"Allow": ", ".join(allowed)},
            )
        raise NotFound(f"no route /v1/{path}; see /docs for the API")

    if settings.ui:
        import gradio as gr

        from ui.app import build_ui

        # The UI is a client like any other: it calls this gateway over HTTP.
        api_base = ui_api_base(settings.host, settings.port)
        gr.mount_gradio_app(app, build_ui(api_base), path="/")  # last: "/" matches everything
    return app


def ui_api_base(host: str, port: int) -> str:
    """Where the UI reaches this gateway: the address it listens on (loopback for a wildcard
    bind). A fixed 127.0.0.1 reached nothing when `--host` named one interface's address."""
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(host, host)
    return f"http://{f'[{host}]' if ':' in host else host}:{port}/v1"


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        # as uvicorn binds: a port whose last connections are in TIME_WAIT is free to reuse
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _is_loopback(host: str) -> bool:
    """Whether `--host` binds loopback only (the one case a keyless local mode is allowed)."""
    return is_loopback_name(host)


def say(message: str) -> None:
    print(f"flywheel: {message}", file=sys.stderr, flush=True)


def earlier_data_dir(data_dir: Path) -> Path | None:
    """./data when it holds a database and the default data dir does not: where versions that
    kept state relative to the current directory left it."""
    old = Path("data")
    if data_dir != default_data_dir() or (data_dir / DB_NAME).exists():
        return None
    return old.resolve() if (old / DB_NAME).is_file() else None


async def run_up(settings: Settings) -> int:
    """Start the engine, then the gateway; stop both on Ctrl-C / SIGTERM. Returns an exit code."""
    if not _port_free(settings.host, settings.port):
        say(f"port {settings.port} on {settings.host} is in use; pass --port to choose another")
        return 2
    say(f"data: {settings.data_dir.resolve()} (database, adapters, logs; --data-dir to change)")
    if (earlier := earlier_data_dir(settings.data_dir)) is not None:
        say(f"an earlier flywheel database is in {earlier}: to keep using it pass --data-dir "
            f"{earlier}, or move that folder to {settings.data_dir}")  # fmt: skip
    services = build_services(settings)
    if not services.keys.any_active():
        if not _is_loopback(settings.host):
            say(
                f"binding {settings.host} without API keys would open the API to the network; "
                "create one first: flywheel keys create --name admin --role admin"
            )
            return 2
        say("local mode: no API keys exist, so the gateway listens on loopback only")
    engine = services.engine
    engine.on_ready = services.registry.load_all

    def engine_down() -> None:
        """The engine died or hung: forget what it had loaded, end what waits on it."""
        services.registry.engine_lost()
        services.engine_client.abort_all()

    engine.on_down = engine_down
    atexit.register(engine.stop_now)
    app = create_app(settings, services)

    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, main_task.cancel)
    try:
        if engine.external:
            say(f"using the engine at {engine.url}")
        else:
            say(f"starting the vLLM engine for {settings.served_model_name} (~1 min on 2 cores)")
        await engine.start()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
            # uvicorn captures signals while serving and re-raises them afterwards; a handler
            # that only notes the signal lets the `finally` below stop the engine every time.
            signal.signal(sig, lambda *_: None)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            timeout_keep_alive=KEEP_ALIVE_S,
        )
        server = uvicorn.Server(config)
        announce = asyncio.create_task(_announce_when_started(server, settings))
        await server.serve()
        announce.cancel()
        return 0 if server.started else 1
    except EngineFailed as exc:
        say(f"the engine failed to start: {exc}")
        return 1
    except asyncio.CancelledError:
        say("interrupted")
        return 130
    finally:
        say("stopping the engine")
        with contextlib.suppress(Exception):
            await engine.stop()
        services.store.close()


async def _announce_when_started(server: uvicorn.Server, settings: Settings) -> None:
    while not server.started:
        await asyncio.sleep(0.1)
    url = settings.public_url
    model = settings.served_model_name
    say(f"ready.\n  UI:         {url}/\n  OpenAI API: {url}/v1  (model: {model})")
    say("press Ctrl-C to stop")
