"""What the page shows, checked without a browser: escaped model HTML, the rating reasons."""

from __future__ import annotations

from feedback.store import REASONS
from ui.chat_tab import BAD_REASONS, GOOD_REASONS, REASON_LABELS
from ui.conversations import Conversation
from ui.safe_markdown import safe_markdown


def test_html_outside_code_is_escaped():
    assert safe_markdown('<img src=x onerror="alert(1)"> & <b>') == (
        '&lt;img src=x onerror="alert(1)"> &amp; &lt;b>'
    )


def test_code_spans_and_blocks_are_left_as_markdown_shows_them():
    text = "use `<b>` or ``a ` <i>``\n```html\n<script>x()</script>\n```\nthen <p>"
    assert safe_markdown(text) == (
        "use `<b>` or ``a ` <i>``\n```html\n<script>x()</script>\n```\nthen &lt;p>"
    )


def test_a_fence_still_streaming_stays_code():
    assert safe_markdown("see:\n```py\nif a < b:") == "see:\n```py\nif a < b:"


def test_an_unmatched_backtick_does_not_shield_html():
    assert safe_markdown("a ` <script>") == "a ` &lt;script>"


def test_the_page_offers_exactly_the_gateways_reasons():
    assert set(REASON_LABELS) == set(REASONS)
    assert set(GOOD_REASONS) | set(BAD_REASONS) == set(REASONS)


def test_a_stopped_answer_is_kept_once():
    conv = Conversation()
    conv.add("user", "hi")
    run = conv.start("answer")
    assert conv.streaming(run, "chatcmpl-1", "Hel")
    conv.keep_pending()  # Stop
    conv.keep_pending()  # the cancelled stream, a moment later
    assert not conv.streaming(run, "chatcmpl-1", "Hello")  # a late delta is dropped
    assert not conv.finished(run)
    assert conv.messages[-1] == {"role": "assistant", "content": "Hel"}
    assert conv.ids == [None, "chatcmpl-1"]


def test_the_chatbot_shows_no_system_prompt_and_escapes_answers():
    conv = Conversation()
    conv.add("system", "be brief")
    conv.add("user", "hi")
    conv.add("assistant", "<b>hey</b>", "chatcmpl-2")
    assert conv.chatbot() == [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "&lt;b>hey&lt;/b>"},
    ]
    assert Conversation.from_dict(conv.to_dict()).messages == conv.messages
