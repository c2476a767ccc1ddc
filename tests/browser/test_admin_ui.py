"""The Adapters and Data tabs: the registry, promote and roll back, counts, raters, exports."""

from __future__ import annotations

import io
import json

import httpx
import pyarrow.parquet as pq
import pytest

from tests.browser.pages import ask, open_tab, status
from tests.polling import wait_for

pytestmark = pytest.mark.browser


def count(page, name: str) -> int:
    return int(page.locator(f'#data-counts [data-count="{name}"] .fw-num').inner_text())


def test_adapters_table_promote_and_roll_back(page, stack, copy_adapter, screenshot):
    engine_name = copy_adapter("ui-promote")
    open_tab(page, "Adapters")
    table = page.locator("#adapters-table")
    wait_for(lambda: engine_name in table.inner_text(), what="the new adapter in the table")
    row = table.get_by_role("row").filter(has_text=engine_name)
    assert "candidate" in row.inner_text()

    page.locator("#adapter-pick input").click()
    page.get_by_role("option", name=engine_name, exact=True).click()
    page.locator("#adapter-promote").click()
    wait_for(lambda: "is live" in status(page, "#adapters-status"), what="the promotion")
    live = httpx.get(f"{stack.api}/adapters").json()
    assert [a["engine_name"] for a in live if a["status"] == "live"] == [engine_name]
    wait_for(lambda: "live" in row.inner_text(), what="the table to show it live")
    screenshot("ui-adapters.png")

    page.locator("#adapter-rollback").click()
    wait_for(lambda: "live again" in status(page, "#adapters-status"), what="the rollback")
    statuses = {a["engine_name"]: a["status"] for a in httpx.get(f"{stack.api}/adapters").json()}
    assert engine_name not in statuses  # retired: hidden unless asked for
    page.locator("#adapters-retired").get_by_label("Show retired versions").check()
    wait_for(lambda: "retired" in table.inner_text(), what="retired versions listed")


def test_data_tab_counts_raters_and_exports(page, store, screenshot, tmp_path):
    open_tab(page, "Data")
    wait_for(lambda: count(page, "exchanges") >= 0, what="the counts")
    before = {name: count(page, name) for name in ("exchanges", "ratings", "comparisons")}

    open_tab(page, "Chat")
    ask(page, store, "Name a colour.")
    page.locator('#chatbot button[aria-label="Like"]').last.click()
    page.locator("#rate-save").click()
    wait_for(lambda: "rated" in status(page), what="the rating")
    page.locator("#regenerate").click()
    wait_for(lambda: page.locator("#pick-a").is_visible(), what="the second answer")
    wait_for(lambda: "Which answer" in status(page), what="the second answer to end")
    page.locator("#pick-a").click()
    wait_for(lambda: "Saved" in status(page), what="the comparison")

    open_tab(page, "Data")
    wait_for(
        lambda: count(page, "exchanges") >= before["exchanges"] + 2, what="new answers counted"
    )
    assert count(page, "ratings") == before["ratings"] + 1
    assert count(page, "comparisons") == before["comparisons"] + 1
    assert "(anonymous)" in page.locator("#raters-table").inner_text()

    page.locator("#export-run").click()  # DPO as JSON Lines: the defaults
    wait_for(lambda: "rows" in status(page, "#export-status"), what="the export")
    with page.expect_download() as download:
        page.locator("#export-file a").first.click()
    path = tmp_path / "dpo.jsonl"
    download.value.save_as(path)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    assert rows and set(rows[0]) >= {"prompt", "chosen", "rejected"}
    screenshot("ui-data.png")

    page.locator("#export-format input").click()
    page.get_by_role("option", name="KTO — prompt, completion, label (KTOTrainer)").click()
    page.locator("#export-kind").get_by_label("Parquet").check()
    page.locator("#export-run").click()
    wait_for(lambda: ".parquet" in status(page, "#export-status"), what="the Parquet export")
    with page.expect_download() as download:
        page.locator("#export-file a").first.click()
    table = pq.read_table(io.BytesIO(download.value.path().read_bytes()))
    assert {"prompt", "completion", "label"} <= set(table.column_names)
