"""/metrics counts every answer the gateway gives, the 500 of an unhandled error included."""

from __future__ import annotations

from fastapi.testclient import TestClient

from serve.config import Settings
from serve.gateway import create_app


def requests_counted(client: TestClient, route: str, status: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'flywheel_requests_total{{route="{route}",status="{status}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_an_unhandled_error_is_counted_as_the_500_it_becomes(tmp_path):
    """Hardening 14: Starlette answers an unhandled error outside the metrics middleware, so
    the 500 never reached /metrics."""
    settings = Settings("m", "m", data_dir=tmp_path, ui=False, engine_url="http://127.0.0.1:9")
    app = create_app(settings)

    @app.get("/boom")
    async def boom():
        raise RuntimeError("a bug")

    client = TestClient(app, base_url="http://127.0.0.1", raise_server_exceptions=False)
    assert client.get("/boom").status_code == 500
    assert client.get("/boom").status_code == 500
    assert requests_counted(client, "/boom", "500") == 2
