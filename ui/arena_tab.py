"""The Arena tab: two anonymous answers side by side, one vote, then the reveal.

Built for raters doing hundreds of votes: the keys 1/2/3/4 vote, `n` starts the next battle with
a sample prompt ready (Enter sends it), and a counter shows the votes so far. The gateway keeps
the models hidden until the vote and allows one vote per battle; the page only shows that.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import gradio as gr

from ui.access import Access, error_text, rater_name
from ui.client import BattleDelta
from ui.safe_markdown import safe_markdown

VOTES = {
    "a": "← A is better  [1]",
    "b": "→ B is better  [2]",
    "tie": "= Tie  [3]",
    "both_bad": "✗ Both are bad  [4]",
}
VOTED = {"a": "A is better", "b": "B is better", "tie": "a tie", "both_bad": "both are bad"}
SAMPLE_PROMPTS = (
    "Explain what a rainbow is to a child.",
    "Give me three tips for a good night's sleep.",
    "Write a haiku about autumn.",
    "What is the difference between weather and climate?",
    "Suggest a name for a friendly robot.",
    "How do I boil an egg?",
    "Why is the sky blue?",
    "Write a short thank-you note to a teacher.",
    "What are two benefits of walking every day?",
    "Describe a cat in one sentence.",
    "How do plants make food?",
    "Give me a simple recipe for pancakes.",
)
NAMES_MODEL = "⚠ This answer names a model: it may give its side away. Judge the rest."
HELP = (
    "Two anonymous models answer the same prompt. Vote for the better answer; the names are "
    "shown after your vote. **Keys:** `1` A · `2` B · `3` tie · `4` both bad · `n` next battle "
    "(then Enter). Before voting you may ask a follow-up: both sides answer it."
)


@dataclass
class Battle:
    """One battle as the page shows it; the gateway holds the truth."""

    battle_id: str | None = None
    shown_a: list[dict] = field(default_factory=list)  # chatbot messages, side a
    shown_b: list[dict] = field(default_factory=list)
    ready: bool = False  # both answers are complete: a vote is possible
    voted: bool = False
    votes: int = 0  # this page's votes so far (carried from battle to battle)


@dataclass
class ArenaTab:
    voted: object  # the vote events: the leaderboard refreshes after them
    loads: list[tuple]


def _vote_buttons(enabled: bool) -> list:
    variant = "primary" if enabled else "secondary"  # bright when a vote is expected
    return [gr.update(interactive=enabled, variant=variant) for _ in VOTES]


def _chat(messages: list[dict], label: str):
    return gr.update(value=messages, label=label)


def build_arena_tab(access: Access) -> ArenaTab:
    def counter(battle: Battle, api_key, rater) -> str:
        text = f"Your votes this session: **{battle.votes}**"
        name = rater_name(rater)
        if name:
            try:
                rows = access.client(api_key).raters()
            except Exception:
                rows = []
            total = next((r.get("arena_votes", 0) for r in rows if r.get("rater") == name), 0)
            text += f" · as {name}, all time: **{total}**"
        return text

    def send(api_key, rater, text, max_tokens, temperature, battle: Battle):
        text = (text or "").strip()
        if not text:
            yield (gr.update(),) * 5 + (battle, *_vote_buttons(battle.ready), gr.update(), "")
            return
        if battle.voted or battle.battle_id is None:  # a new battle
            battle = Battle(votes=battle.votes)
        elif not battle.ready:
            yield (gr.update(),) * 5 + (
                battle,
                *_vote_buttons(False),
                gr.update(),
                "… wait for both answers",
            )
            return
        battle.ready = False
        user = {"role": "user", "content": safe_markdown(text)}
        base_a, base_b = [*battle.shown_a, user], [*battle.shown_b, user]
        answers = {"a": "", "b": ""}

        def panes():
            a = [*base_a, {"role": "assistant", "content": safe_markdown(answers["a"])}]
            b = [*base_b, {"role": "assistant", "content": safe_markdown(answers["b"])}]
            return _chat(a, "Model A"), _chat(b, "Model B")

        sampling = {"max_tokens": int(max_tokens), "temperature": temperature}
        rater = rater_name(rater)
        try:
            events = access.client(api_key).stream_battle(
                [{"role": "user", "content": text}],
                battle_id=battle.battle_id,
                **sampling,
                **({"rater": rater} if rater else {}),
            )

            def streaming(prompt_box) -> tuple:
                return (*panes(), prompt_box, "", "", battle, *_vote_buttons(False), "",
                        "… both models answer")  # fmt: skip

            # the prompt is cleared once, here: later updates leave it alone, so a follow-up
            # typed while the answers stream is kept (and sent once they are done)
            yield streaming("")
            for event in events:
                if isinstance(event, BattleDelta):
                    battle.battle_id = event.battle_id
                    answers[event.side] += event.text
                    yield streaming(gr.update())
                    continue
                battle.battle_id = event["battle_id"]
                responses = event["responses"]
                answers = {"a": responses[0]["text"], "b": responses[1]["text"]}
                warn = [NAMES_MODEL if r.get("names_model") else "" for r in responses]
                battle.shown_a, battle.shown_b = (
                    [*base_a, {"role": "assistant", "content": safe_markdown(answers["a"])}],
                    [*base_b, {"role": "assistant", "content": safe_markdown(answers["b"])}],
                )
                battle.ready = True
                status = "Which answer is better? Vote with the buttons or the keys 1–4."
                yield (*panes(), gr.update(), *warn, battle, *_vote_buttons(True), "", status)
        except Exception as exc:
            yield (
                gr.update(), gr.update(), text, gr.update(), gr.update(), battle,
                *_vote_buttons(battle.ready), gr.update(), f"⚠ {error_text(exc)}",
            )  # fmt: skip

    def vote(winner: str, api_key, rater, battle: Battle):
        if not battle.ready or battle.voted or battle.battle_id is None:
            return gr.update(), gr.update(), battle, *_vote_buttons(False), gr.update(), gr.update()
        try:
            result = access.client(api_key).vote(battle.battle_id, winner, rater_name(rater))
        except Exception as exc:
            buttons = _vote_buttons(True)
            return gr.update(), gr.update(), battle, *buttons, gr.update(), f"⚠ {error_text(exc)}"
        battle.voted, battle.votes = True, battle.votes + 1
        model_a, model_b = result["models"]["a"], result["models"]["b"]
        reveal = (
            f"### You voted: {VOTED[winner]}\n"
            f"**Model A** was `{model_a}` · **Model B** was `{model_b}` — "
            "press **n** (or Next battle) for another."
        )
        return (
            _chat(battle.shown_a, f"Model A: {model_a}"),
            _chat(battle.shown_b, f"Model B: {model_b}"),
            battle,
            *_vote_buttons(False),
            reveal,
            "",
        )

    def next_battle(battle: Battle):
        fresh = Battle(votes=battle.votes)
        sample = random.choice(SAMPLE_PROMPTS)
        return (
            _chat([], "Model A"), _chat([], "Model B"), sample, "", "", fresh,
            *_vote_buttons(False), "", "A new battle: edit the prompt or press Enter.",
        )  # fmt: skip

    gr.Markdown(HELP, elem_id="arena-help")
    battle = gr.State(Battle())
    with gr.Row(equal_height=True):
        with gr.Column():
            pane_a = gr.Chatbot(
                label="Model A", height=380, elem_id="arena-a", feedback_options=None,
                buttons=["copy"], sanitize_html=True, allow_tags=False,
            )  # fmt: skip
            warn_a = gr.Markdown(elem_id="arena-warn-a")
        with gr.Column():
            pane_b = gr.Chatbot(
                label="Model B", height=380, elem_id="arena-b", feedback_options=None,
                buttons=["copy"], sanitize_html=True, allow_tags=False,
            )  # fmt: skip
            warn_b = gr.Markdown(elem_id="arena-warn-b")
    with gr.Row():
        vote_buttons = {
            w: gr.Button(label, interactive=False, elem_id=f"vote-{w}", variant="secondary")
            for w, label in VOTES.items()
        }
    reveal = gr.Markdown(elem_id="arena-reveal")
    with gr.Row():
        prompt = gr.Textbox(
            placeholder="Ask both models something, then press Enter",
            show_label=False,
            scale=6,
            elem_id="arena-prompt",
        )
        send_btn = gr.Button(
            "Send", variant="primary", scale=1, min_width=100, elem_id="arena-send"
        )
        next_btn = gr.Button("Next battle  [n]", scale=1, min_width=170, elem_id="arena-next")
    with gr.Row():
        count = gr.Markdown("Your votes this session: **0**", elem_id="arena-counter")
        status = gr.Markdown(elem_id="arena-status")
    # Not in a closed accordion: there, in a tab not shown first, Gradio 6.31 sends None.
    with gr.Row(elem_id="arena-settings"):
        max_tokens = gr.Slider(
            16, 1024, value=192, step=16, label="Max tokens per answer", elem_id="arena-max-tokens"
        )
        temperature = gr.Slider(
            0, 2, value=0.7, step=0.05, label="Temperature", elem_id="arena-temperature"
        )

    key, rater = access.api_key, access.rater
    buttons = list(vote_buttons.values())
    outputs = [pane_a, pane_b, prompt, warn_a, warn_b, battle, *buttons, reveal, status]
    blur = "() => { document.activeElement && document.activeElement.blur(); }"
    for trigger in (prompt.submit, send_btn.click):
        # "always_last": Enter pressed while a send is still finishing (its last update shown,
        # the event not yet closed) runs once it closes; Gradio's default drops it silently
        trigger(
            send,
            [key, rater, prompt, max_tokens, temperature, battle],
            outputs,
            trigger_mode="always_last",
        )
        # the prompt loses focus, so the keys 1-4 vote rather than type
        trigger(None, js=blur)
    voted = []
    for winner, button in vote_buttons.items():
        event = button.click(
            lambda k, r, b, w=winner: vote(w, k, r, b),
            [key, rater, battle],
            [pane_a, pane_b, battle, *buttons, reveal, status],
        )
        event.then(counter, [battle, key, rater], [count], show_progress="hidden")
        voted.append(event)
    focus = "() => { document.querySelector('#arena-prompt textarea')?.focus(); }"
    next_btn.click(next_battle, [battle], outputs).then(None, js=focus)
    return ArenaTab(voted=voted, loads=[(counter, [battle, key, rater], [count])])
