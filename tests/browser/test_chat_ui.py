"""A person in a real browser on the Chat tab: chat, rate with reasons, regenerate and pick,
edit an answer, stop a stream, resume a conversation, and model HTML shown as text."""

from __future__ import annotations

import json

import httpx
import pytest

from feedback import Store
from tests.browser.pages import (
    answer_on_screen,
    ask,
    exchanges_for,
    open_chat_settings,
    short_answers,
    status,
)
from tests.polling import wait_for

pytestmark = pytest.mark.browser


def test_chat_rate_with_reasons_regenerate_and_pick(page, store, screenshot):
    short_answers(page)
    prompt = "Give me one tip for staying focused."
    first = ask(page, store, prompt)

    page.locator('#chatbot button[aria-label="Like"]').last.click()
    page.locator("#rate-panel").get_by_label("Helpful").check()
    page.locator("#rate-panel").get_by_label("Clear").check()
    page.locator("#rate-comment textarea, #rate-comment input").fill("short and useful")
    screenshot("ui-chat-rating.png")
    page.locator("#rate-save").click()
    wait_for(lambda: "rated ▲ good" in status(page), what="the rating to be confirmed")
    ratings = list(store.db["ratings"].rows_where("exchange_id = ?", [first["id"]]))
    assert [(r["value"], json.loads(r["reasons"]), r["comment"]) for r in ratings] == [
        (1, ["helpful", "clear"], "short and useful")
    ]
    assert not page.locator("#rate-save").is_visible()

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
    answer_on_screen(page, second)  # the better answer stays in the chat


def test_a_thumb_down_offers_the_reasons_for_a_bad_answer(page, store):
    short_answers(page)
    row = ask(page, store, "Name a planet.")
    page.locator('#chatbot button[aria-label="Dislike"]').last.click()
    panel = page.locator("#rate-panel")
    panel.get_by_label("Too short").check()
    assert not panel.get_by_label(
        "Helpful", exact=True
    ).is_visible()  # good reasons go with a thumb up
    page.locator("#rate-comment textarea, #rate-comment input").fill("say why")
    page.locator("#rate-comment textarea, #rate-comment input").press("Enter")  # Enter saves
    wait_for(lambda: "rated ▼ bad" in status(page), what="the rating")
    [rating] = list(store.db["ratings"].rows_where("exchange_id = ?", [row["id"]]))
    assert (rating["value"], json.loads(rating["reasons"])) == (-1, ["too_short"])


def test_edit_an_answer_stores_what_it_should_have_been(page, store):
    short_answers(page)
    row = ask(page, store, "What is the capital of France?")
    page.locator("#edit-answer").click()
    box = page.locator("#edit-text textarea")
    assert box.input_value().strip() == row["completion"].strip()  # starts from the answer
    box.fill("The capital of France is **Paris**.")
    page.locator("#edit-save").click()
    wait_for(lambda: "Saved your edit" in status(page), what="the edit to be saved")
    [edit] = list(store.db["edits"].rows_where("exchange_id = ?", [row["id"]]))
    assert edit["content"] == "The capital of France is **Paris**."
    bot = page.locator('#chatbot [data-testid="bot"]').last
    assert bot.inner_text().strip() == "The capital of France is Paris."  # Markdown rendered
    assert bot.locator("strong").inner_text() == "Paris"


def test_model_html_is_shown_as_text_and_never_runs(page, store):
    """Edited answers go through the same rendering as streamed ones (Conversation.chatbot)."""
    short_answers(page, 16)
    ask(page, store, "Say something.")
    hostile = (
        '<img src=x onerror="window.__xss = 1"> <script>window.__xss = 2</script> '
        "<b>not bold</b> and `<i>code</i>`"
    )
    page.locator("#edit-answer").click()
    page.locator("#edit-text textarea").fill(hostile)
    page.locator("#edit-save").click()
    wait_for(lambda: "Saved your edit" in status(page), what="the edit")
    bot = page.locator('#chatbot [data-testid="bot"]').last
    wait_for(lambda: "<script>" in bot.inner_text(), what="the HTML shown as text")
    text = bot.inner_text()
    assert '<img src=x onerror="window.__xss = 1">' in text
    assert "<b>not bold</b>" in text and "<i>code</i>" in text
    assert bot.locator("img, script, b, i").count() == 0  # no element came from the text
    page.wait_for_timeout(500)  # an image error handler would have fired by now
    assert page.evaluate("window.__xss") is None


def test_stop_keeps_the_answer_so_far_and_chat_goes_on(page, store):
    prompt = "Write a long story about a dragon who learns to bake bread."
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#send").click()
    bot = page.locator('#chatbot [data-testid="bot"]').last
    wait_for(lambda: len(bot.inner_text().strip()) > 10, what="the answer to start")
    page.locator("#stop").click()
    wait_for(lambda: "stopped" in status(page), what="the stream to stop")
    row = wait_for(lambda: exchanges_for(store, prompt), what="the cut answer logged")[0]
    assert row["finish_reason"] == "cancelled"
    shown = bot.inner_text()
    page.wait_for_timeout(1500)
    assert bot.inner_text() == shown  # nothing arrives after Stop
    follow_up = ask(page, store, "Thanks. Now say goodbye.")
    messages = json.loads(follow_up["messages"])
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]  # the cut answer kept


def test_conversations_are_listed_and_resume_after_a_reload(page, store):
    short_answers(page)
    open_chat_settings(page)
    page.locator("#system-prompt textarea").fill("You are a pirate.")
    first = ask(page, store, "Tell me about parrots.")
    assert json.loads(first["messages"])[0] == {"role": "system", "content": "You are a pirate."}
    page.locator("#new-chat").click()
    wait_for(lambda: page.locator('#chatbot [data-testid="bot"]').count() == 0, what="empty")
    ask(page, store, "Tell me about owls.")
    conversations = page.locator("#conversations")
    wait_for(lambda: "Tell me about owls." in conversations.inner_text(), what="listed")

    page.reload(wait_until="load")
    page.wait_for_selector("#prompt textarea")
    conversations = page.locator("#conversations")
    wait_for(lambda: "Tell me about parrots." in conversations.inner_text(), what="kept")
    conversations.get_by_text("Tell me about parrots.").click()
    answer_on_screen(page, first)
    follow_up = ask(page, store, "And their colours?")
    messages = json.loads(follow_up["messages"])
    assert messages[0]["content"] == "You are a pirate."  # the system prompt came back too
    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]


def test_trained_adapter_appears_in_the_picker_and_answers(page, stack, trained_adapter):
    assert trained_adapter.result.returncode == 0, trained_adapter.result.stderr[-2000:]
    store = Store(stack.data_dir / "flywheel.db")
    page.locator("#refresh-models").click()
    page.locator("#model input").click()
    page.get_by_role("option", name=trained_adapter.name, exact=True).click()
    short_answers(page)
    row = ask(page, store, "Tell me about apples.")
    models = httpx.get(f"{stack.api}/models").json()["data"]
    [card] = [m for m in models if m["id"] == trained_adapter.name]
    assert row["engine_model"] == card["root"]  # name@version: the adapter answered
    assert row["engine_model"].startswith(f"{trained_adapter.name}@")
