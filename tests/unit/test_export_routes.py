"""`GET /v1/feedback/export`, `POST /v1/feedback/import`, and the `flywheel export|import` CLI."""

import io
import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from cli.main import make_parser
from feedback import Store
from feedback.api_keys import ApiKeys
from feedback.export_files import jsonl_lines, parquet_metadata
from feedback.exports import EXPORT_SCHEMA, export_rows
from feedback.imports import import_bytes
from serve.auth import ApiKeyAuth, needs_admin
from serve.errors import install_error_handlers
from serve.routes import export
from tests.unit.feedback_rows import PAIR, build_store, jsonl


class NoQueue:
    async def flush(self) -> None:
        pass


def app_for(store: Store) -> FastAPI:
    app = FastAPI()
    app.state.services = SimpleNamespace(store=store, exchange_log=NoQueue())
    install_error_handlers(app)
    app.include_router(export.router)
    return app


@pytest.fixture
def store() -> Store:
    return build_store()


@pytest.fixture
def client(store) -> TestClient:
    return TestClient(base_url="http://127.0.0.1", app=app_for(store))


def test_export_streams_jsonl_with_its_identity_in_headers(client, store):
    resp = client.get("/v1/feedback/export", params={"format": "dpo", "split": "all"})
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/x-ndjson"
    expected = export_rows(store, "dpo")
    assert [json.loads(line) for line in resp.text.splitlines()] == expected.rows
    assert resp.headers["x-flywheel-export-schema"] == EXPORT_SCHEMA
    assert resp.headers["x-flywheel-snapshot"] == expected.snapshot
    assert resp.headers["x-flywheel-rows"] == str(len(expected.rows))
    disposition = resp.headers["content-disposition"]
    assert f'filename="flywheel-dpo-all-{expected.snapshot[:12]}.jsonl"' in disposition


def test_export_as_parquet_with_filters(client, store):
    params = {"format": "kto", "as": "parquet", "model": "tone@2", "since": "2020-01-01"}
    resp = client.get("/v1/feedback/export", params=params)
    assert resp.status_code == 200
    assert resp.headers["content-type"] == "application/vnd.apache.parquet"
    import pyarrow.parquet as pq

    rows = pq.read_table(io.BytesIO(resp.content)).to_pylist()
    assert rows == export_rows(store, "kto", model="tone@2").rows and len(rows) == 1
    meta = parquet_metadata(resp.content)
    assert meta["snapshot"] == resp.headers["x-flywheel-snapshot"]
    assert json.loads(resp.headers["x-flywheel-kto-weights"]) == json.loads(meta["kto_weights"])


def test_an_empty_export_is_empty_and_says_why():
    resp = TestClient(base_url="http://127.0.0.1", app=app_for(Store(None))).get(
        "/v1/feedback/export?format=sft"
    )
    assert resp.status_code == 200 and resp.text == ""
    assert resp.headers["x-flywheel-rows"] == "0"
    assert "thumbs up" in resp.headers["x-flywheel-hint"]


@pytest.mark.parametrize(
    "query, param",
    [
        ("format=orpo", "format"),
        ("format=dpo&split=test", "split"),
        ("format=dpo&as=csv", "as"),
        ("format=dpo&since=yesterday", "since"),
        ("split=all", "format"),
    ],
)
def test_bad_export_queries_are_400_in_openai_shape(client, query, param):
    resp = client.get(f"/v1/feedback/export?{query}")
    assert resp.status_code == 400
    error = resp.json()["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert param in (error["param"] or "") or param in error["message"]


def test_import_stores_rows_and_counts_them():
    store = Store(None)
    client = TestClient(base_url="http://127.0.0.1", app=app_for(store))
    resp = client.post("/v1/feedback/import?format=dpo", content=jsonl(PAIR))
    assert resp.status_code == 201
    body = resp.json()
    assert body["object"] == "feedback.import"
    assert (body["rows"], body["exchanges"], body["comparisons"], body["duplicates"]) == (
        1,
        2,
        1,
        0,
    )
    again = client.post("/v1/feedback/import?format=dpo", content=jsonl(PAIR)).json()
    assert again["duplicates"] == 1 and again["comparisons"] == 0
    assert export_rows(store, "dpo").rows == [PAIR]


def test_import_of_a_parquet_export_round_trips(client, store):
    data = client.get("/v1/feedback/export?format=reward&as=parquet").content
    fresh = Store(None)
    resp = TestClient(base_url="http://127.0.0.1", app=app_for(fresh)).post(
        "/v1/feedback/import?format=reward", content=data
    )
    assert resp.status_code == 201
    assert export_rows(fresh, "reward").rows == export_rows(store, "reward").rows


def test_import_with_bad_rows_is_422_naming_them_and_stores_nothing():
    store = Store(None)
    body = jsonl(PAIR, {**PAIR, "chosen": [{"role": "user", "content": "x"}]}, b"{")
    resp = TestClient(base_url="http://127.0.0.1", app=app_for(store)).post(
        "/v1/feedback/import?format=dpo", content=body
    )
    assert resp.status_code == 422
    error = resp.json()["error"]
    assert (error["type"], error["code"]) == ("invalid_request_error", "invalid_rows")
    assert "row 2: `chosen` must be a list of one message with role assistant" in error["message"]
    assert "row 3: not valid JSON" in error["message"]
    assert store.counts()["exchanges"] == 0


@pytest.mark.parametrize(
    "method, path, admin",
    [
        ("GET", "/v1/feedback/export", True),
        ("POST", "/v1/feedback/import", True),
        ("POST", "/v1/feedback/ratings", False),
        ("POST", "/v1/feedback/comparisons", False),
        ("GET", "/v1/feedback/exports", False),  # whole path segments, not string prefixes
    ],
)
def test_export_and_import_need_an_admin_key(method, path, admin):
    assert needs_admin(method, path) is admin


def test_a_user_key_cannot_export_an_admin_key_can(store):
    keys = ApiKeys(store)
    _, user = keys.create("reader", "user")
    _, admin = keys.create("boss", "admin")
    app = app_for(store)
    app.add_middleware(ApiKeyAuth, keys=keys)
    client = TestClient(base_url="http://127.0.0.1", app=app)
    url = "/v1/feedback/export?format=dpo"
    denied = client.get(url, headers={"Authorization": f"Bearer {user}"})
    assert denied.status_code == 403 and "admin key" in denied.json()["error"]["message"]
    assert client.get(url, headers={"Authorization": f"Bearer {admin}"}).status_code == 200


# -- the CLI ---------------------------------------------------------------------------------


def cli(*argv: str) -> int:
    args = make_parser().parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def data_dir(tmp_path):
    """A data dir whose database holds the three DPO pairs of `build_store`, imported."""
    path = tmp_path / "data"
    store = Store(path / "flywheel.db")
    import_bytes(store, "dpo", b"".join(jsonl_lines(export_rows(build_store(), "dpo").rows)))
    store.close()
    return path


@pytest.mark.parametrize("command", ["export", "import"])
def test_export_and_import_have_help(command):
    result = subprocess.run(
        [sys.executable, "-m", "cli", command, "--help"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0
    assert f"usage: flywheel {command}" in result.stdout
    assert "--format" in result.stdout and "examples:" in result.stdout


def test_cli_export_writes_a_file_and_a_summary(data_dir, tmp_path, capsys):
    out = tmp_path / "dpo.parquet"
    assert cli("export", "--format", "dpo", "--out", str(out), "--data-dir", str(data_dir)) == 0
    meta = parquet_metadata(str(out))
    assert (meta["format"], meta["rows"]) == ("dpo", "3")
    err = capsys.readouterr().err
    assert "3 dpo rows" in err and meta["snapshot"][:16] in err


def test_cli_export_to_stdout_then_import_round_trips(data_dir, tmp_path, capsys):
    assert cli("export", "--format", "dpo", "--data-dir", str(data_dir)) == 0
    rows = capsys.readouterr().out
    (tmp_path / "rows.jsonl").write_text(rows)
    fresh = tmp_path / "fresh"
    Store(fresh / "flywheel.db").close()
    path = str(tmp_path / "rows.jsonl")
    assert cli("import", path, "--format", "dpo", "--data-dir", str(fresh)) == 0
    assert "imported 3 dpo rows" in capsys.readouterr().err
    assert cli("export", "--format", "dpo", "--data-dir", str(fresh)) == 0
    assert capsys.readouterr().out == rows


def test_cli_errors_name_the_problem_and_the_fix(data_dir, tmp_path, capsys):
    assert cli("export", "--format", "sft", "--data-dir", str(data_dir)) == 2
    assert "no sft rows to export: give answers a thumbs up" in capsys.readouterr().err
    assert cli("export", "--format", "dpo", "--data-dir", str(tmp_path / "none")) == 2
    assert "no database at" in capsys.readouterr().err
    assert cli("export", "--format", "dpo", "--since", "soon", "--data-dir", str(data_dir)) == 2
    assert "ISO 8601" in capsys.readouterr().err
    assert cli("import", str(tmp_path / "missing.jsonl"), "--format", "dpo") == 2
    assert "cannot read" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(jsonl(PAIR, {"prompt": []}))
    assert cli("import", str(bad), "--format", "kto", "--data-dir", str(data_dir)) == 2
    err = capsys.readouterr().err
    assert "nothing imported" in err and "row 1: missing column `completion`, `label`" in err
