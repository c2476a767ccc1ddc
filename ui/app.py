"""The Gradio app: the tabs assembled, the page-wide access settings, keyboard shortcuts.

It reaches flywheel only through the gateway's HTTP API, like any client. Each tab lives in its
own module (`ui/*_tab.py`); this one lays them out and wires what crosses tabs: the API key's
role (admin controls hidden from user keys), the leaderboard refreshed after arena votes, and
the Chat tab's model picker refreshed when a training job produces an adapter.
"""

from __future__ import annotations

import json

import gradio as gr

from ui.access import ROLE_NOTES, build_access
from ui.adapters_tab import build_adapters_tab
from ui.arena_tab import build_arena_tab
from ui.chat_tab import build_chat_tab
from ui.data_tab import build_data_tab
from ui.leaderboard_tab import build_leaderboard_tab
from ui.training_tab import build_training_tab

CONCURRENT_RUNS = 64  # per event (e.g. chat streams at once); each holds a worker thread

# The gateway mounts the app with `gr.mount_gradio_app`, which replaces any css/js/head given
# to gr.Blocks; so the page's own style and keys are installed by a component when it loads.
CSS = """
#access .form { gap: 8px; }
.fw-cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 4px 0 8px; }
.fw-card { flex: 1 1 120px; border: 1px solid var(--border-color-primary);
  border-radius: 10px; padding: 12px 16px; background: var(--background-fill-secondary); }
.fw-num { font-size: 28px; font-weight: 700; line-height: 1.1; }
.fw-label { color: var(--body-text-color-subdued); font-size: 13px; }
.fw-empty { padding: 24px; color: var(--body-text-color-subdued); text-align: center;
  border: 1px dashed var(--border-color-primary); border-radius: 10px; }
#vote-a, #vote-b, #vote-tie, #vote-both_bad { min-height: 48px; font-size: 16px; }
#arena-warn-a p, #arena-warn-b p { color: #b45309; font-weight: 600; }
#arena-reveal h3 { margin-bottom: 2px; }
"""

# Fast rating in the Arena: 1-4 vote, n starts the next battle. Keys typed into a text field
# are left alone; a button that is hidden (another tab) or disabled is not clicked.
# Copy buttons in a chat copy the text shown, which ui.safe_markdown escaped (`&lt;`, `&amp;`):
# the clipboard gets the text as the model wrote it back.
PAGE_JS = """
if (!window.__flywheelPage) {
  window.__flywheelPage = true;
  const style = document.createElement('style');
  style.textContent = %s;
  document.head.appendChild(style);
  const keys = {'1': 'vote-a', '2': 'vote-b', '3': 'vote-tie', '4': 'vote-both_bad',
                'n': 'arena-next', 'N': 'arena-next'};
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (target && (target.isContentEditable || ['INPUT', 'TEXTAREA', 'SELECT']
        .includes(target.tagName))) return;
    const id = keys[event.key];
    if (!id) return;
    const button = document.getElementById(id);
    if (!button || button.disabled || button.offsetParent === null) return;
    event.preventDefault();
    button.click();
  });
  let clicked = null;
  document.addEventListener('pointerdown', (event) => { clicked = event.target; }, true);
  const clipboard = navigator.clipboard;
  if (clipboard && clipboard.writeText) {
    const write = clipboard.writeText.bind(clipboard);
    clipboard.writeText = (text) => {
      const inChat = clicked && clicked.closest && clicked.closest('#chatbot, #arena-a, #arena-b');
      if (inChat && typeof text === 'string') {
        text = text.replace(/&(lt|amp);/g, (_, name) => (name === 'lt' ? '<' : '&'));
      }
      return write(text);
    };
  }
}
"""


def build_ui(api_base: str) -> gr.Blocks:
    # Gradio's copies of downloads (the Data tab's exports) expire after an hour.
    with gr.Blocks(title="flywheel", delete_cache=(600, 3600)) as demo:
        gr.HTML("", js_on_load=PAGE_JS % _js_string(CSS), elem_id="flywheel-page")
        with gr.Row():
            gr.Markdown("## flywheel · chat, rate, train, compare")
            role_note = gr.Markdown(elem_id="role")
        access = build_access(api_base)
        with gr.Tabs(elem_id="tabs"):
            with gr.Tab("Chat", id="chat") as chat_tab:
                chat = build_chat_tab(access)
            with gr.Tab("Arena", id="arena"):
                arena = build_arena_tab(access)
            with gr.Tab("Leaderboard", id="leaderboard") as leaderboard_tab:
                leaderboard = build_leaderboard_tab(access)
            with gr.Tab("Adapters", id="adapters") as adapters_tab:
                adapters = build_adapters_tab(access)
            with gr.Tab("Training", id="training") as training_tab:
                training = build_training_tab(access)
            with gr.Tab("Data", id="data") as data_tab:
                data = build_data_tab(access)

        admin_only = [*adapters.admin_only, *training.admin_only, *data.admin_only]
        others_only = [*adapters.others_only, *training.others_only, *data.others_only]

        def check_role(api_key):
            role = access.role(api_key)
            note = ROLE_NOTES[role] if (api_key or "").strip() else ""
            admin = role == "admin"
            shown, hidden = gr.update(visible=admin), gr.update(visible=not admin)
            return note, *[shown for _ in admin_only], *[hidden for _ in others_only]

        role_check = (check_role, [access.api_key], [role_note, *admin_only, *others_only])
        loads = [role_check, *chat.loads, *arena.loads]
        loads += [leaderboard.refresh, adapters.refresh, training.refresh, data.refresh]
        quiet = {"show_progress": "hidden"}  # background refreshes: no spinner over the page
        for fn, inputs, outputs in loads:
            demo.load(fn, inputs, outputs, **quiet)
        access.api_key.change(*role_check, **quiet).then(*chat.loads[-1], **quiet)
        for tab, part in (
            (leaderboard_tab, leaderboard),
            (adapters_tab, adapters),
            (training_tab, training),
            (data_tab, data),
        ):
            tab.select(*part.refresh, **quiet)
        # A new adapter is offered in the picker as soon as its job succeeds, and the picker
        # is listed again whenever the Chat tab is opened (the chat's status line is kept).
        list_models, model_inputs, (model_picker, _) = chat.loads[-1]
        picker = (lambda key, current: list_models(key, current)[0], model_inputs, [model_picker])
        training.trained.change(*picker, **quiet)
        chat_tab.select(*picker, **quiet)
        for event in arena.voted:
            event.then(*leaderboard.refresh, **quiet)
    # Callbacks wait on the gateway, not on this process: one rater's stream must not queue
    # behind another's (Gradio's default is one run at a time per event).
    demo.queue(default_concurrency_limit=CONCURRENT_RUNS)
    return demo


def _js_string(text: str) -> str:
    """`text` as a JavaScript string literal."""
    return json.dumps(text)
