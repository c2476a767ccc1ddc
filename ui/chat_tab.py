"""The Chat tab: stream answers, rate them (reasons, comment), regenerate and pick, edit.

Each judgement is one call to the gateway (see `ui.client`). The page holds the conversation
in `gr.State` and the list of conversations in the browser (`ui.conversations`). Answers are
shown through `safe_markdown`: HTML a model writes is displayed as text, never run.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from ui import conversations
from ui.access import Access, error_text, rater_name
from ui.client import GatewayError
from ui.conversations import Conversation
from ui.safe_markdown import safe_markdown

STOPPED = "■ stopped"  # written by Stop and again by the stream it cut, whichever lands last
WINNER_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}
# The gateway's fixed reasons (feedback/store.py REASONS), offered by the thumb clicked.
REASON_LABELS = {
    "helpful": "Helpful",
    "accurate": "Accurate",
    "clear": "Clear",
    "well_formatted": "Well formatted",
    "unhelpful": "Unhelpful",
    "wrong": "Wrong",
    "unclear": "Unclear",
    "too_long": "Too long",
    "too_short": "Too short",
    "off_topic": "Off topic",
    "unsafe": "Unsafe",
    "other": "Other",
}
GOOD_REASONS = ("helpful", "accurate", "clear", "well_formatted", "other")
BAD_REASONS = ("wrong", "unhelpful", "unclear", "too_long", "too_short", "off_topic", "unsafe")
BAD_REASONS += ("other",)


@dataclass
class RatingTarget:
    index: int  # into Conversation.messages
    value: int  # 1 or -1


def _reason_choices(value: int) -> list[tuple[str, str]]:
    return [(REASON_LABELS[r], r) for r in (GOOD_REASONS if value > 0 else BAD_REASONS)]


@dataclass
class ChatTab:
    model: gr.Dropdown
    status: gr.Markdown
    loads: list[tuple]  # (fn, inputs, outputs) to run when the page loads or the key changes


def build_chat_tab(access: Access) -> ChatTab:
    def client(api_key):
        return access.client(api_key)

    # -- models ------------------------------------------------------------------------------

    def load_models(api_key: str | None, current: str | None):
        try:
            names = client(api_key).models()
        except Exception as exc:
            return gr.update(), f"⚠ could not list models: {error_text(exc)}"
        value = current if current in names else (names[0] if names else None)
        return gr.update(choices=names, value=value), ""

    # -- sending and streaming ---------------------------------------------------------------

    def sampling(temperature: float, top_p: float, max_tokens: int) -> dict:
        return {"temperature": temperature, "top_p": top_p, "max_tokens": int(max_tokens)}

    def send(api_key, text, model, system, temperature, top_p, max_tokens, conv: Conversation):
        text = (text or "").strip()
        if not text:
            yield gr.update(), conv, gr.update(), gr.update()
            return
        conv.rival = None
        if not conv.messages and (system or "").strip():
            conv.add("system", system.strip())
        conv.add("user", text)
        conv.model = model
        answer, completion_id = "", None
        run = conv.start("answer")
        try:
            stream = client(api_key).stream_chat(
                model, conv.messages, **sampling(temperature, top_p, max_tokens)
            )
            status = "… answering (■ Stop cuts it short)"
            for delta in stream:
                completion_id, answer = delta.completion_id, answer + delta.text
                if not conv.streaming(run, completion_id, answer):
                    yield conv.chatbot(), conv, "", STOPPED  # Stop kept the answer so far
                    return
                yield conv.chatbot(streaming=answer), conv, "", status
                status = gr.update()  # said once: a late update must not hide Stop's status
        except GeneratorExit:  # Stop cancelled this run: Gradio closes the generator
            conv.keep_pending()
            raise
        except Exception as exc:
            if conv.finished(run):
                conv.messages.pop(), conv.ids.pop()
                if conv.messages and conv.messages[-1]["role"] == "system":
                    conv.messages.pop(), conv.ids.pop()
            yield conv.chatbot(), conv, text, f"⚠ {error_text(exc)}"
            return
        if conv.finished(run):
            conv.add("assistant", answer, completion_id)
        yield conv.chatbot(), conv, "", ""

    def regenerate(api_key, model, temperature, top_p, max_tokens, conv: Conversation):
        last = conv.last_answer()
        if last is None:
            yield gr.update(), gr.update(), gr.update(), conv, "⚠ nothing to regenerate yet"
            return
        if conv.ids[last] is None:
            yield gr.update(), gr.update(), gr.update(), conv, "⚠ this answer was edited by hand"
            return
        original = conv.messages[last]["content"]
        answer, completion_id = "", None
        box = gr.update(visible=True)
        run = conv.start("rival")
        try:
            stream = client(api_key).stream_chat(
                model, conv.messages[:last], **sampling(temperature, top_p, max_tokens)
            )
            status = "… a second answer"
            for delta in stream:
                completion_id, answer = delta.completion_id, answer + delta.text
                if not conv.streaming(run, completion_id, answer):
                    yield box, safe_markdown(original), safe_markdown(answer), conv, STOPPED
                    return
                yield box, safe_markdown(original), safe_markdown(answer), conv, status
                status = gr.update()  # as in send: Stop's status is the last word
        except GeneratorExit:
            conv.keep_pending()
            raise
        except Exception as exc:
            conv.finished(run)
            yield box, safe_markdown(original), safe_markdown(answer), conv, f"⚠ {error_text(exc)}"
            return
        if conv.finished(run):
            conv.rival = (completion_id, answer)
        yield box, safe_markdown(original), safe_markdown(answer), conv, "Which answer is better?"

    def stop(conv: Conversation, saved):
        """Keep what arrived before Stop (the gateway logs it as a cancelled answer)."""
        conv.keep_pending()
        saved = conversations.save(saved, conv)
        radio = gr.update(choices=conversations.choices(saved), value=conv.id)
        return conv.chatbot(), conv, saved, radio, STOPPED

    def pick(winner: str, api_key, rater, conv: Conversation):
        last = conv.last_answer()
        if conv.rival is None or last is None:
            return gr.update(visible=False), gr.update(), conv, "⚠ regenerate first"
        rival_id, rival_text = conv.rival
        try:
            client(api_key).compare(conv.ids[last], rival_id, winner, rater_name(rater))
        except GatewayError as exc:
            return gr.update(), gr.update(), conv, f"⚠ {error_text(exc)}"
        if winner == "b":  # the better answer stays in the conversation
            conv.messages[last] = {"role": "assistant", "content": rival_text}
            conv.ids[last] = rival_id
        conv.rival = None
        return gr.update(visible=False), conv.chatbot(), conv, f"Saved: {WINNER_LABELS[winner]}"

    # -- rating: a thumb opens a small panel, Save sends value, reasons and comment at once --

    def open_rating(data: gr.LikeData, conv: Conversation):
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        shown = conv.shown()
        position = shown[index] if 0 <= index < len(shown) else None
        keep = (gr.update(),) * 3
        value = {True: 1, "Like": 1, False: -1, "Dislike": -1}.get(data.liked)
        if value is None:  # a thumb taken back
            return gr.update(visible=False), *keep, None, ""
        if position is None or conv.ids[position] is None:
            why = "edited answers are yours" if position is not None else "only answers"
            return gr.update(visible=False), *keep, None, f"⚠ {why}: nothing to rate"
        title = f"### Rated {'▲ good' if value > 0 else '▼ bad'}: why? (optional, then Save)"
        return (
            gr.update(visible=True),
            title,
            gr.update(choices=_reason_choices(value), value=[]),
            "",
            RatingTarget(position, value),
            "",
        )

    def save_rating(api_key, rater, target: RatingTarget | None, reasons, comment, conv):
        if target is None:
            return gr.update(visible=False), None, "⚠ click a thumb under an answer first"
        completion_id = conv.ids[target.index]
        comment = (comment or "").strip() or None
        try:
            client(api_key).rate(
                completion_id, target.value, list(reasons or []), comment, rater_name(rater)
            )
        except GatewayError as exc:
            return gr.update(), target, f"⚠ {error_text(exc)}"
        thumb = "▲ good" if target.value > 0 else "▼ bad"
        why = ", ".join(REASON_LABELS[r] for r in reasons or [])
        return (
            gr.update(visible=False),
            None,
            f"Thanks: rated {thumb}" + (f" ({why})" if why else ""),
        )

    # -- editing: what the answer should have been -------------------------------------------

    def open_edit(conv: Conversation):
        last = conv.last_answer()
        if last is None or conv.ids[last] is None:
            why = "nothing to edit yet" if last is None else "already edited"
            return gr.update(visible=False), gr.update(), f"⚠ {why}"
        return gr.update(visible=True), conv.messages[last]["content"], ""

    def save_edit(api_key, rater, text, conv: Conversation, saved):
        last = conv.last_answer()
        text = (text or "").strip()
        unchanged = gr.update(), conv, gr.update(), saved, gr.update()
        if last is None or conv.ids[last] is None:
            return *unchanged, "⚠ nothing to edit"
        if not text:
            return *unchanged, "⚠ write the answer it should have been"
        try:
            client(api_key).edit(conv.ids[last], text, rater_name(rater))
        except GatewayError as exc:
            return *unchanged, f"⚠ {error_text(exc)}"
        conv.messages[last] = {"role": "assistant", "content": text}
        conv.ids[last] = None  # the rater's words now, not the model's
        saved = conversations.save(saved, conv)
        radio = gr.update(choices=conversations.choices(saved), value=conv.id)
        return gr.update(visible=False), conv, conv.chatbot(), saved, radio, "Saved your edit"

    # -- the conversation list ---------------------------------------------------------------

    def remember(conv: Conversation, saved):
        saved = conversations.save(saved, conv)
        return saved, gr.update(choices=conversations.choices(saved), value=conv.id)

    def list_saved(saved):
        return gr.update(choices=conversations.choices(saved), value=None)

    def resume(conv_id, saved, model_now):
        conv = conversations.find(saved, conv_id) or Conversation()
        model = conv.model if conv.model else model_now
        return conv.chatbot(), conv, conv.system, gr.update(value=model), *closed_panels(), ""

    def new_chat(saved):
        radio = gr.update(choices=conversations.choices(saved), value=None)
        return [], Conversation(), radio, *closed_panels(), ""

    def delete_chat(conv: Conversation, saved):
        saved = [c for c in saved or [] if c.get("id") != conv.id]
        radio = gr.update(choices=conversations.choices(saved), value=None)
        return [], Conversation(), saved, radio, *closed_panels(), "Deleted the conversation"

    def closed_panels():
        return gr.update(visible=False), gr.update(visible=False), gr.update(visible=False)

    # -- layout ------------------------------------------------------------------------------

    conv = gr.State(Conversation())
    rating = gr.State(None)
    saved = gr.BrowserState([], storage_key="flywheel-conversations", secret="flywheel-ui")
    with gr.Row(equal_height=False):
        with gr.Column(scale=1, min_width=220, elem_id="conversation-list"):
            new_btn = gr.Button("+ New chat", variant="primary", size="md", elem_id="new-chat")
            conv_list = gr.Radio(
                label="Conversations", choices=[], elem_id="conversations", interactive=True
            )
            delete_btn = gr.Button("Delete this chat", size="sm", elem_id="delete-chat")
        with gr.Column(scale=4):
            with gr.Row():
                model = gr.Dropdown(label="Model", choices=[], scale=4, elem_id="model")
                refresh = gr.Button(
                    "↻ Refresh models", scale=1, size="sm", elem_id="refresh-models"
                )
            with gr.Accordion("System prompt and sampling", open=False, elem_id="chat-settings"):
                system = gr.Textbox(
                    label="System prompt (set when a conversation starts)",
                    placeholder="e.g. You are a concise assistant.",
                    lines=2,
                    elem_id="system-prompt",
                )
                with gr.Row():
                    temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
                    top_p = gr.Slider(0.05, 1, value=1.0, step=0.05, label="Top p")
                    max_tokens = gr.Slider(
                        16, 1024, value=256, step=16, label="Max tokens", elem_id="max-tokens"
                    )
            chatbot = gr.Chatbot(
                label="Conversation",
                height=420,
                elem_id="chatbot",
                buttons=["copy", "copy_all"],
                sanitize_html=True,
                allow_tags=False,  # no tag is let through as HTML (see ui.safe_markdown)
                placeholder="Ask anything. The thumbs under an answer rate it.",
            )
            with gr.Row():
                prompt = gr.Textbox(
                    placeholder="Ask anything, then press Enter",
                    show_label=False,
                    scale=6,
                    elem_id="prompt",
                )
                send_btn = gr.Button(
                    "Send", variant="primary", scale=1, min_width=100, size="md", elem_id="send"
                )
                stop_btn = gr.Button(
                    "■ Stop", variant="stop", scale=1, min_width=100, size="md", elem_id="stop"
                )
            with gr.Row():
                regen_btn = gr.Button("↻ Regenerate and compare", size="md", elem_id="regenerate")
                edit_btn = gr.Button("✎ Edit answer", size="md", elem_id="edit-answer")
            with gr.Column(visible=False, variant="panel", elem_id="rate-panel") as rate_panel:
                rate_title = gr.Markdown("### Rate this answer", elem_id="rate-title")
                reasons = gr.CheckboxGroup(
                    choices=_reason_choices(1), show_label=False, elem_id="rate-reasons"
                )
                comment = gr.Textbox(
                    placeholder="A comment (optional); Enter saves",
                    show_label=False,
                    elem_id="rate-comment",
                )
                with gr.Row():
                    rate_save = gr.Button("Save rating", variant="primary", elem_id="rate-save")
                    rate_cancel = gr.Button("Cancel", elem_id="rate-cancel")
            with gr.Column(visible=False, variant="panel", elem_id="edit-panel") as edit_panel:
                gr.Markdown("### What should the answer have been?")
                edit_text = gr.Textbox(lines=6, show_label=False, elem_id="edit-text")
                with gr.Row():
                    edit_save = gr.Button("Save edit", variant="primary", elem_id="edit-save")
                    edit_cancel = gr.Button("Cancel", elem_id="edit-cancel")
            with gr.Column(visible=False, variant="panel", elem_id="compare") as compare_box:
                gr.Markdown("### Which answer is better?")
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("**A** (first answer)")
                        answer_a = gr.Markdown(elem_id="answer-a")
                    with gr.Column():
                        gr.Markdown("**B** (regenerated)")
                        answer_b = gr.Markdown(elem_id="answer-b")
                with gr.Row():
                    pick_buttons = {
                        winner: gr.Button(label, elem_id=f"pick-{winner}")
                        for winner, label in WINNER_LABELS.items()
                    }
            status = gr.Markdown(elem_id="status")

    # -- events ------------------------------------------------------------------------------

    key, rater = access.api_key, access.rater
    panels = [rate_panel, edit_panel, compare_box]
    refresh.click(load_models, [key, model], [model, status])
    running = []
    for trigger in (prompt.submit, send_btn.click):
        event = trigger(lambda: closed_panels(), None, panels).then(
            send,
            [key, prompt, model, system, temperature, top_p, max_tokens, conv],
            [chatbot, conv, prompt, status],
        )
        running.append(event)
        event.then(remember, [conv, saved], [saved, conv_list])
    regen = regen_btn.click(
        regenerate,
        [key, model, temperature, top_p, max_tokens, conv],
        [compare_box, answer_a, answer_b, conv, status],
    )
    running.append(regen)
    stop_btn.click(stop, [conv, saved], [chatbot, conv, saved, conv_list, status], cancels=running)
    for winner, button in pick_buttons.items():
        button.click(
            lambda k, r, c, w=winner: pick(w, k, r, c),
            [key, rater, conv],
            [compare_box, chatbot, conv, status],
        ).then(remember, [conv, saved], [saved, conv_list])

    chatbot.like(open_rating, [conv], [rate_panel, rate_title, reasons, comment, rating, status])
    for trigger in (rate_save.click, comment.submit):
        trigger(
            save_rating, [key, rater, rating, reasons, comment, conv], [rate_panel, rating, status]
        )
    rate_cancel.click(lambda: (gr.update(visible=False), None), None, [rate_panel, rating])

    edit_btn.click(open_edit, [conv], [edit_panel, edit_text, status])
    edit_save.click(
        save_edit,
        [key, rater, edit_text, conv, saved],
        [edit_panel, conv, chatbot, saved, conv_list, status],
    )
    edit_cancel.click(lambda: gr.update(visible=False), None, [edit_panel])

    fresh = [chatbot, conv, conv_list, *panels, status]
    new_btn.click(new_chat, [saved], fresh)
    chatbot.clear(new_chat, [saved], fresh)  # its own trash button
    delete_btn.click(delete_chat, [conv, saved], [chatbot, conv, saved, conv_list, *panels, status])
    conv_list.input(
        resume, [conv_list, saved, model], [chatbot, conv, system, model, *panels, status]
    )
    return ChatTab(
        model=model,
        status=status,
        loads=[(list_saved, [saved], [conv_list]), (load_models, [key, model], [model, status])],
    )
