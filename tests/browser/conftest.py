"""Headless Debian chromium driven by Playwright (its own browser download cannot reach us)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium") or "/usr/bin/chromium"
    if not Path(executable).exists():
        pytest.fail(
            "Debian chromium is missing: `apt-get install chromium` (./flywheel test does it)"
        )
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, stack):
    context = browser.new_context(viewport={"width": 1200, "height": 1100})
    page = context.new_page()
    page.set_default_timeout(120_000)  # a 2-core CI box answers slowly while training
    page.goto(stack.url, wait_until="load")  # never networkidle: Gradio keeps a queue open
    page.wait_for_selector("#prompt textarea")
    page.wait_for_function("document.querySelector('#model input')?.value")  # models listed
    yield page
    context.close()


@pytest.fixture
def screenshot(page, tmp_path):
    """Save a screenshot; with FLYWHEEL_SCREENSHOTS=1 also into docs/ for the README."""

    def take(name: str) -> Path:
        path = tmp_path / name
        page.screenshot(path=path, full_page=True)
        if os.environ.get("FLYWHEEL_SCREENSHOTS"):
            DOCS.mkdir(exist_ok=True)
            shutil.copy(path, DOCS / name)
        return path

    return take


@pytest.fixture(scope="session")
def store(stack):
    from feedback import Store

    return Store(stack.data_dir / "flywheel.db")


@pytest.fixture(scope="session")
def copy_adapter(stack, trained_adapter):
    """`copy_adapter(name)`: the trained weights registered again under `name` (a test's own
    adapter); returns its engine name."""
    import httpx

    from feedback import Store

    def register(name: str) -> str:
        assert trained_adapter.result.returncode == 0, trained_adapter.result.stderr[-2000:]
        rows = Store(stack.data_dir / "flywheel.db").adapters(True)
        [row] = [r for r in rows if r["name"] == trained_adapter.name][:1]
        resp = httpx.post(
            f"{stack.api}/adapters", json={"name": name, "path": row["path"]}, timeout=300
        )
        assert resp.status_code == 201, resp.text
        return resp.json()["engine_name"]

    return register


@pytest.fixture(scope="session")
def arena_adapter(copy_adapter) -> str:
    """A second served model, so the arena has two sides (this suite's own name)."""
    return copy_adapter("ui-arena")
