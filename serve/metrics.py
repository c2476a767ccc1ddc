"""Prometheus metrics of the gateway, in a registry of its own (one per app, none global).

Request counts and latency come from a pure ASGI middleware (time to the response's first
byte, so a stream counts its time to first token, not its length); tokens are counted by the
exchange writer from the usage the engine reports, off the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback import Exchange

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "flywheel_requests", "HTTP requests by route and status", ["route", "status"],
            registry=r,
        )  # fmt: skip
        self.latency = Histogram(
            "flywheel_request_seconds",
            "Seconds to the first response byte (a stream: time to first token)",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_requests = Counter(
            "flywheel_model_requests", "Logged exchanges by served model", ["model"], registry=r
        )
        self.tokens = Counter(
            "flywheel_tokens", "Tokens by served model and kind", ["model", "kind"], registry=r
        )
        self.adapter_loads = Counter(
            "flywheel_adapter_loads", "Adapter loads into the engine by result", ["result"],
            registry=r,
        )  # fmt: skip
        self.log_queue_depth = Gauge(
            "flywheel_exchange_log_queue_depth", "Exchanges waiting to be written", registry=r
        )
        self.engine_up = Gauge("flywheel_engine_up", "1 when the engine answers", registry=r)
        self.exchange_log_retries = Counter(
            "flywheel_exchange_log_retries",
            "Exchange batches the database refused for a while, written on a retry",
            registry=r,
        )
        self.exchanges_dropped = Counter(
            "flywheel_exchanges_dropped",
            "Answers that could not be logged at all (could not be built or stored)",
            registry=r,
        )

    def watch_queue(self, depth: Callable[[], int]) -> None:
        self.log_queue_depth.set_function(depth)

    def count_exchange(self, exchange: Exchange) -> None:
        model = exchange.engine_model
        self.model_requests.labels(model).inc()
        usage = exchange.usage or {}
        for kind in ("prompt", "completion"):
            if tokens := usage.get(f"{kind}_tokens"):
                self.tokens.labels(model, kind).inc(tokens)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every request by its route template (bounded labels, never raw paths)."""

    def __init__(self, app: ASGIApp, metrics: GatewayMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        responded = False

        def count(status: int) -> None:
            route = scope.get("route")
            label = getattr(route, "path", None) or "other"
            self.metrics.requests.labels(label, str(status)).inc()
            self.metrics.latency.labels(label).observe(time.perf_counter() - started)

        async def send_and_measure(message: Message) -> None:
            nonlocal responded
            if message["type"] == "http.response.start":
                responded = True
                count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_and_measure)
        except BaseException:
            # An unhandled error: Starlette's outermost middleware answers it with a 500 after
            # it has left this one, so it is counted here, as the 500 it becomes.
            if not responded:
                count(500)
            raise
