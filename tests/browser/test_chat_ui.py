"""A person in a real browser: chat, thumbs, regenerate and pick, then chat with a new adapter."""

from __future__ import annotations

import httpx
import pytest

from feedback import Store
from tests.polling import wait_for

pytestmark = pytest.mark.browser


def exchanges_for(store: Store, prompt: str) -> list[dict]:
    rows = store.db.query(
        "select id, completion, engine_model from exchanges where messages like ? order by rowid",
        [f'%"content": "{prompt}"%'],
    )
    return list(rows)


def ask(page, store: Store, prompt: str) -> dict:
    """Type and send a prompt; return its exchange once streamed, logged and on screen."""
    before = len(exchanges_for(store, prompt))
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#send").click()
    row = wait_for(lambda: exchanges_for(store, prompt)[before:], what="the answer to be logged")[0]
    bot = page.locator('#chatbot [data-testid="bot"]').last
    shown = row["completion"].strip()[:20]
    wait_for(lambda: shown in bot.inner_text(), what="the answer on screen")
    return row


def status(page) -> str:
    return page.locator("#status").inner_text()


def test_chat_rate_regenerate_and_pick(page, stack, screenshot):
    store = Store(stack.data_dir / "flywheel.db")
    prompt = "Give me one tip for staying focused."
    first = ask(page, store, prompt)

    page.locator('#chatbot button[aria-label="Like"]').last.click()
    wait_for(lambda: "rated 👍" in status(page), what="the rating to be confirmed")
    ratings = list(store.db["ratings"].rows_where("exchange_id = ?", [first["id"]]))
    assert [r["value"] for r in ratings] == [1]

    seen = len(exchanges_for(store, prompt))
    page.locator("#regenerate").click()
    wait_for(lambda: "Which answer is better?" in status(page), what="the second answer")
    second = wait_for(lambda: exchanges_for(store, prompt)[seen:], what="second exchange")[0]
    assert page.locator("#pick-b").is_visible()
    screenshot("ui-chat.png")

    page.locator("#pick-b").click()
    wait_for(lambda: "Saved: B is better" in status(page), what="the comparison to be saved")
    [comparison] = list(store.db["comparisons"].rows_where("exchange_b = ?", [second["id"]]))
    assert (comparison["exchange_a"], comparison["winner"], comparison["source"]) == (
        first["id"],
        "b",
        "ui",
    )
    assert not page.locator("#pick-b").is_visible()
    bot_text = page.locator('#chatbot [data-testid="bot"]').last.inner_text()
    assert second["completion"].strip()[:20] in bot_text  # the better answer stays in the chat


def test_trained_adapter_appears_in_the_picker_and_answers(page, stack, trained_adapter):
    assert trained_adapter.result.returncode == 0, trained_adapter.result.stderr[-2000:]
    store = Store(stack.data_dir / "flywheel.db")
    page.locator("#refresh-models").click()
    page.locator("#model input").click()
    page.get_by_role("option", name=trained_adapter.name, exact=True).click()
    row = ask(page, store, "Tell me about apples.")
    models = httpx.get(f"{stack.api}/models").json()["data"]
    [card] = [m for m in models if m["id"] == trained_adapter.name]
    assert row["engine_model"] == card["root"]  # name@version: the adapter answered
    assert row["engine_model"].startswith(f"{trained_adapter.name}@")
