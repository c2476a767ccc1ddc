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
