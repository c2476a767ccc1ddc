"""The Chat tab: stream answers, thumbs on each answer, regenerate and pick the better one.

Every action is one call to the gateway's API (see `ui.client`); the page holds only the
conversation in `gr.State`. Markdown is rendered with HTML sanitised (Gradio's default), so
a model answer can never run script in the rater's browser.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import gradio as gr
import openai

from ui.client import GatewayClient, GatewayError

WINNER_LABELS = {"a": "A is better", "b": "B is better", "tie": "Tie", "both_bad": "Both are bad"}


@dataclass
class Conversation:
    """The messages as sent to the model, and the completion id behind each assistant turn."""

    messages: list[dict] = field(default_factory=list)
    ids: list[str | None] = field(default_factory=list)  # parallel to messages
    rival: tuple[str, str] | None = None  # (completion id, text) of a regenerated answer

    def add(self, role: str, content: str, completion_id: str | None = None) -> None:
        self.messages.append({"role": role, "content": content})
        self.ids.append(completion_id)


def _history(conv: Conversation) -> list[dict]:
    return [dict(m) for m in conv.messages]


def _error_text(exc: Exception) -> str:
    if isinstance(exc, openai.AuthenticationError):
        return "this gateway requires an API key: enter yours under “Sampling and access”"
    if isinstance(exc, openai.APIStatusError):
        try:
            return exc.response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            return str(exc)
    return str(exc)


def build_ui(api_base: str) -> gr.Blocks:
    def client_for(api_key: str | None) -> GatewayClient:
        """The UI calls the gateway with the rater's own key, if any (one client per key)."""
        return _client((api_key or "").strip() or "local")

    @functools.lru_cache(maxsize=64)
    def _client(api_key: str) -> GatewayClient:
        return GatewayClient(api_base, api_key=api_key)

    def load_models(api_key: str | None, current: str | None):
        try:
            choices = client_for(api_key).models()
        except Exception as exc:
            return gr.update(), f"⚠️ could not list models: {_error_text(exc)}"
        value = current if current in choices else (choices[0] if choices else None)
        return gr.update(choices=choices, value=value), ""

    def send(
        api_key: str, text: str, model: str, temperature: float, max_tokens: int, conv: Conversation
    ):
        text = (text or "").strip()
        if not text:
            yield gr.update(), conv, "", gr.update()
            return
        conv.rival = None
        prefix = [*conv.messages, {"role": "user", "content": text}]
        conv.add("user", text)
        answer, completion_id = "", None
        try:
            sampling = {"temperature": temperature, "max_tokens": int(max_tokens)}
            for delta in client_for(api_key).stream_chat(model, prefix, **sampling):
                completion_id, answer = delta.completion_id, answer + delta.text
                yield [*_history(conv), {"role": "assistant", "content": answer}], conv, "", ""
        except Exception as exc:
            conv.messages.pop(), conv.ids.pop()
            yield _history(conv), conv, text, f"⚠️ {_error_text(exc)}"
            return
        conv.add("assistant", answer, completion_id)
        yield _history(conv), conv, "", ""

    def rate(data: gr.LikeData, api_key: str, conv: Conversation):
        index = data.index[0] if isinstance(data.index, list | tuple) else data.index
        completion_id = conv.ids[index] if 0 <= index < len(conv.ids) else None
        if completion_id is None:
            return "⚠️ only answers can be rated"
        liked = data.liked in (True, "Like")
        try:
            client_for(api_key).rate(completion_id, 1 if liked else -1)
        except GatewayError as exc:
            return f"⚠️ {exc}"
        return "Thanks: rated 👍" if liked else "Thanks: rated 👎"

    def regenerate(
        api_key: str, model: str, temperature: float, max_tokens: int, conv: Conversation
    ):
        if not conv.messages or conv.messages[-1]["role"] != "assistant":
            yield gr.update(), gr.update(), gr.update(), conv, "⚠️ nothing to regenerate yet"
            return
        original = conv.messages[-1]["content"]
        prefix = conv.messages[:-1]
        answer, completion_id = "", None
        box = gr.update(visible=True)
        try:
            sampling = {"temperature": temperature, "max_tokens": int(max_tokens)}
            for delta in client_for(api_key).stream_chat(model, prefix, **sampling):
                completion_id, answer = delta.completion_id, answer + delta.text
                yield box, original, answer, conv, "Generating a second answer…"
        except Exception as exc:
            yield box, original, answer, conv, f"⚠️ {_error_text(exc)}"
            return
        conv.rival = (completion_id, answer)
        yield box, original, answer, conv, "Which answer is better?"

    def pick(winner: str, api_key: str, conv: Conversation):
        if conv.rival is None:
            return gr.update(visible=False), gr.update(), conv, "⚠️ regenerate first"
        rival_id, rival_text = conv.rival
        try:
            client_for(api_key).compare(conv.ids[-1], rival_id, winner)
        except GatewayError as exc:
            return gr.update(), gr.update(), conv, f"⚠️ {exc}"
        if winner == "b":  # the better answer stays in the conversation
            conv.messages[-1] = {"role": "assistant", "content": rival_text}
            conv.ids[-1] = rival_id
        conv.rival = None
        return gr.update(visible=False), _history(conv), conv, f"Saved: {WINNER_LABELS[winner]}"

    def clear():
        return [], Conversation(), gr.update(visible=False), ""

    with gr.Blocks(title="flywheel") as demo:
        conv = gr.State(Conversation())
        gr.Markdown("## flywheel · chat, rate, train, compare")
        with gr.Tab("Chat"):
            with gr.Row():
                model = gr.Dropdown(label="Model", choices=[], scale=4, elem_id="model")
                refresh = gr.Button("Refresh models", scale=1, elem_id="refresh-models")
            with gr.Accordion("Sampling and access", open=False):
                with gr.Row():
                    api_key = gr.Textbox(
                        label="API key",
                        type="password",
                        placeholder="only when the gateway requires keys",
                        elem_id="api-key",
                    )
                    temperature = gr.Slider(0, 2, value=0.7, step=0.05, label="Temperature")
                    max_tokens = gr.Slider(16, 1024, value=256, step=16, label="Max tokens")
            chatbot = gr.Chatbot(label="Conversation", height=420, elem_id="chatbot")
            with gr.Row():
                prompt = gr.Textbox(
                    placeholder="Ask anything, then press Enter",
                    show_label=False,
                    scale=8,
                    elem_id="prompt",
                )
                send_btn = gr.Button("Send", variant="primary", scale=1, elem_id="send")
            with gr.Row():
                regen_btn = gr.Button("Regenerate", elem_id="regenerate")
                clear_btn = gr.Button("New chat", elem_id="new-chat")
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

        demo.load(load_models, [api_key, model], [model, status])
        refresh.click(load_models, [api_key, model], [model, status])
        for trigger in (prompt.submit, send_btn.click):
            trigger(
                send,
                [api_key, prompt, model, temperature, max_tokens, conv],
                [chatbot, conv, prompt, status],
            )
        chatbot.like(rate, [api_key, conv], [status])
        regen_btn.click(
            regenerate,
            [api_key, model, temperature, max_tokens, conv],
            [compare_box, answer_a, answer_b, conv, status],
        )
        for winner, button in pick_buttons.items():
            button.click(
                lambda key, c, w=winner: pick(w, key, c),
                [api_key, conv],
                [compare_box, chatbot, conv, status],
            )
        clear_btn.click(clear, None, [chatbot, conv, compare_box, status])
        chatbot.clear(clear, None, [chatbot, conv, compare_box, status])  # its own trash button
    return demo
