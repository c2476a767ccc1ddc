"""A rater in the Arena: two anonymous answers, a vote by keyboard, the reveal, the leaderboard."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.browser.pages import open_tab
from tests.polling import wait_for

pytestmark = pytest.mark.browser


def leaderboard_battles(page) -> int:
    found = re.search(r"(\d+) voted battles", page.locator("#leaderboard-summary").inner_text())
    return int(found.group(1)) if found else -1


def answers(page, side: str) -> int:
    return page.locator(f'#arena-{side} [data-testid="bot"]').count()


def arena_state(page) -> str:
    """What a failed wait reports: the status line, the prompt, the focus, the buttons."""
    return repr(
        {
            "status": page.locator("#arena-status").inner_text(),
            "reveal": page.locator("#arena-reveal").inner_text(),
            "prompt": page.locator("#arena-prompt textarea").input_value(),
            "focus": page.evaluate("document.activeElement && document.activeElement.tagName"),
            "vote enabled": page.locator("#vote-a").is_enabled(),
            "answers": (answers(page, "a"), answers(page, "b")),
        }
    )


def fight(page, prompt: str, turn: int = 1) -> None:
    """Send a prompt to both sides and wait until their answers for `turn` are complete."""
    page.locator("#arena-prompt textarea").fill(prompt)
    page.locator("#arena-prompt textarea").press("Enter")
    wait_for(
        lambda: (
            answers(page, "a") == answers(page, "b") == turn
            and page.locator("#vote-a").is_enabled()
        ),
        timeout=300,
        what=lambda: f"both answers to turn {turn}; the page showed " + arena_state(page),
    )


def test_vote_by_keyboard_reveals_the_models_and_moves_the_leaderboard(
    page, stack, arena_adapter, store, screenshot
):
    page.locator("#access").get_by_text("Access").first.click()
    page.locator("#rater textarea").fill("ui-rater")  # votes are stored under this name
    open_tab(page, "Leaderboard")
    wait_for(lambda: leaderboard_battles(page) >= 0, what="the leaderboard")
    before = leaderboard_battles(page)

    open_tab(page, "Arena")
    page.locator("#arena-max-tokens input[type=number]").fill("24")
    page.locator("#arena-max-tokens input[type=number]").press("Enter")
    assert not page.locator("#vote-a").is_enabled()  # no vote before both answers exist
    fight(page, "Name a fruit.")
    for side in ("a", "b"):
        assert page.locator(f'#arena-{side} [data-testid="bot"]').inner_text().strip()
    served = {m["id"] for m in httpx.get(f"{stack.api}/models").json()["data"]}
    labels = page.locator("#arena-a, #arena-b").all_inner_texts()
    assert not any(name in text for name in served for text in labels)  # anonymous
    battles = list(store.db.query("select * from battles order by rowid desc limit 1"))
    screenshot("ui-arena.png")

    page.keyboard.press("2")  # B is better
    reveal = page.locator("#arena-reveal")
    wait_for(lambda: "Model A was" in reveal.inner_text(), what="the reveal")
    battle = store.db["battles"].get(battles[0]["id"])
    assert (battle["winner"], battle["status"], battle["rater"]) == ("b", "voted", "ui-rater")
    assert battle["model_a"] in reveal.inner_text() and battle["model_b"] in reveal.inner_text()
    assert "B is better" in reveal.inner_text()
    assert not page.locator("#vote-a").is_enabled()  # one vote per battle
    counter = page.locator("#arena-counter")
    wait_for(lambda: "this session: 1 · as ui-rater" in counter.inner_text(), what="counter")

    open_tab(page, "Leaderboard")
    wait_for(lambda: leaderboard_battles(page) == before + 1, what="the vote on the leaderboard")
    # the count and the table are separate outputs: the table's rows may land a moment later
    table = page.locator("#leaderboard-table")
    wait_for(lambda: battle["model_a"] in table.inner_text(), what="the table's rows")
    assert battle["model_a"] in table.inner_text() and battle["model_b"] in table.inner_text()
    assert page.locator("#rating-plot-svg circle").count() >= 2  # the models' ratings plotted

    open_tab(page, "Arena")
    page.keyboard.press("n")  # next battle: a sample prompt is ready, Enter sends it
    prompt = page.locator("#arena-prompt textarea")
    wait_for(lambda: prompt.input_value().strip(), what="a sample prompt")
    assert page.locator('#arena-a [data-testid="bot"]').count() == 0
    assert reveal.inner_text().strip() == ""
    prompt.press("Enter")
    wait_for(lambda: not prompt.input_value(), what="the sent prompt to leave the box")
    # a follow-up typed and sent while the first answers still stream is kept, and sent when
    # they are done: both models answer it before the vote
    fight(page, "Say it in one word.", turn=2)
    page.keyboard.press("4")  # both bad
    wait_for(
        lambda: "both are bad" in reveal.inner_text(),
        what=lambda: "the second reveal; the page showed " + arena_state(page),
    )
    wait_for(lambda: "this session: 2" in counter.inner_text(), what="the counter")
    [second] = list(store.db.query("select * from battles order by rowid desc limit 1"))
    assert (second["turns"], second["winner"]) == (2, "both_bad")

    open_tab(page, "Leaderboard")
    wait_for(lambda: leaderboard_battles(page) == before + 2, what="both votes on the board")
    screenshot("ui-leaderboard.png")
