"""What a person does on the page, as helpers the browser tests share."""

from __future__ import annotations

import re

import httpx

from feedback import Store
from tests.polling import wait_for

ANSWER_S = 240  # one answer on a loaded 2-core machine


def wait_for_keys(api: str, required: bool) -> None:
    """Wait until the gateway sees keys created (a keyless request refused) or all revoked
    (served again): serve/auth.py trusts what it last saw for up to 5 s."""
    want = 401 if required else 200
    wait_for(
        lambda: httpx.get(f"{api}/models", timeout=30).status_code == want,
        timeout=15,
        what=f"a keyless request to answer {want}",
    )


def exchanges_for(store: Store, prompt: str) -> list[dict]:
    """Exchanges whose last message is `prompt` (as the user sent it), oldest first."""
    rows = store.db.query(
        "select * from exchanges where messages like ? order by rowid",
        [f'%"content": "{prompt}"}}]'],
    )
    return list(rows)


def status(page, selector: str = "#status") -> str:
    return page.locator(selector).inner_text()


def words(text: str) -> str:
    """The words of `text`, as rendered Markdown keeps them.

    List numbers are not text, and underscores are not either: `_word_` renders as italics.
    """
    return " ".join(w for w in re.findall(r"[^\W_]+", text) if not w.isdigit())


def answer_on_screen(page, row: dict, selector: str = "#chatbot") -> None:
    """The logged answer `row` is the last one shown (its first words)."""
    bot = page.locator(f'{selector} [data-testid="bot"]').last
    start = " ".join(words(row["completion"]).split()[:6])
    try:
        wait_for(lambda: start in words(bot.inner_text()), ANSWER_S, what="the answer on screen")
    except AssertionError as exc:  # say what was awaited and what the page shows instead
        shown = words(bot.inner_text()) if bot.count() else "(no answer)"
        raise AssertionError(f"{exc}: {start!r} not in {shown[:400]!r}") from None


def ask(page, store: Store, prompt: str) -> dict:
    """Type and send a prompt; return its exchange once streamed, logged and on screen."""
    before = len(exchanges_for(store, prompt))
    page.locator("#prompt textarea").fill(prompt)
    page.locator("#send").click()
    row = wait_for(
        lambda: exchanges_for(store, prompt)[before:], timeout=ANSWER_S, what="the answer logged"
    )[0]
    answer_on_screen(page, row)
    wait_for(lambda: "answering" not in status(page), what="the stream to end")
    return row


def short_answers(page, max_tokens: int = 48) -> None:
    """Open the chat settings and cap answers (a 2-core box shared with training is slow)."""
    open_chat_settings(page)
    field = page.locator("#max-tokens input[type=number]")
    field.fill(str(max_tokens))
    field.press("Enter")


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def open_chat_settings(page) -> None:
    if not page.locator("#system-prompt").is_visible():
        page.locator("#chat-settings").get_by_text("System prompt and sampling").click()
        page.locator("#system-prompt textarea").wait_for()
