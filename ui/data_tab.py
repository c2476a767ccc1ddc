"""The Data tab: how much has been collected, by whom, and (admin) the training data export.

Exports come from `GET /v1/feedback/export` in TRL's formats; the file is written to a
temporary folder on the gateway's machine and offered to the browser as a download.
"""

from __future__ import annotations

import html
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from ui.access import Access, error_text

COUNTS = (
    ("exchanges", "Answers"),
    ("ratings", "Ratings"),
    ("comparisons", "Comparisons"),
    ("edits", "Edits"),
    ("battles", "Arena battles"),
    ("adapters", "Adapters"),
)
RATER_HEADERS = ["Rater", "Ratings", "Comparisons", "Edits", "Arena votes", "Shared", "Agreement"]
FORMATS = [
    ("DPO — prompt, chosen, rejected (DPOTrainer)", "dpo"),
    ("KTO — prompt, completion, label (KTOTrainer)", "kto"),
    ("Reward — chosen, rejected (RewardTrainer)", "reward"),
    ("SFT — messages (SFTTrainer)", "sft"),
]
KINDS = [("JSON Lines", "jsonl"), ("Parquet", "parquet")]


@dataclass
class DataTab:
    refresh: tuple  # (fn, inputs, outputs)
    admin_only: list
    others_only: list  # shown instead, to keys that are not admin


def counts_html(counts: dict[str, int]) -> str:
    cards = "".join(
        f'<div class="fw-card" data-count="{key}"><div class="fw-num">{counts.get(key, 0)}</div>'
        f'<div class="fw-label">{html.escape(label)}</div></div>'
        for key, label in COUNTS
    )
    return f'<div class="fw-cards" id="data-count-cards">{cards}</div>'


def rater_rows(raters: list[dict]) -> list[list]:
    def share(value) -> str:
        return f"{value:.0%}" if isinstance(value, int | float) else "—"

    return [
        [
            r.get("rater") or "(anonymous)",
            r.get("ratings", 0),
            r.get("comparisons", 0),
            r.get("edits", 0),
            r.get("arena_votes", 0),
            r.get("shared", 0),
            share(r.get("agreement")),
        ]
        for r in raters
    ]


class ExportFiles:
    """Where the Data tab puts an export for the browser to fetch: one private temporary folder
    for the UI's life, removed when the process exits. Each export gets a subfolder (two people
    may export at once); one older than `keep_s` is deleted when the next export is written.
    Gradio serves its own copy, which the Blocks' `delete_cache` expires. Exports used to stay
    in /tmp for ever, every one a full copy of the conversations."""

    def __init__(self, keep_s: float = 600):
        self.keep_s = keep_s
        self._root = tempfile.TemporaryDirectory(prefix="flywheel-exports-")  # gone at exit

    @property
    def root(self) -> Path:
        return Path(self._root.name)

    def write(self, filename: str, content: bytes) -> Path:
        for old in self.root.iterdir():
            if time.time() - old.stat().st_mtime > self.keep_s:
                shutil.rmtree(old, ignore_errors=True)
        path = Path(tempfile.mkdtemp(dir=self.root)) / Path(filename).name
        path.write_bytes(content)
        return path

    def close(self) -> None:
        self._root.cleanup()


def build_data_tab(access: Access, files: ExportFiles | None = None) -> DataTab:
    files = files or ExportFiles()

    def refresh(api_key):
        client = access.client(api_key)
        try:
            counts, raters = client.counts(), client.raters()
        except Exception as exc:
            return gr.update(), gr.update(), f"⚠ {error_text(exc)}"
        return counts_html(counts), rater_rows(raters), ""

    def export(api_key, fmt, kind):
        try:
            result = access.client(api_key).export(fmt, kind)
        except Exception as exc:
            return gr.update(value=None, visible=False), f"⚠ export failed: {error_text(exc)}"
        path = files.write(result.filename, result.content)
        rows = "" if result.rows is None else f"{result.rows} rows · "
        note = f"✔ `{path.name}`: {rows}{len(result.content):,} bytes — download it below."
        if result.hint:
            note += f"\n\n{result.hint}"
        return gr.update(value=str(path), visible=True), note

    with gr.Row(equal_height=True):
        gr.Markdown("### Collected so far")
        button = gr.Button("↻ Refresh", elem_id="data-refresh", size="sm", scale=0, min_width=110)
    cards = gr.HTML(counts_html({}), elem_id="data-counts", js_on_load=None)
    gr.Markdown("### Raters\nAgreement: how often a rater's judgement matches another's on the "
                "same answer or pair (only where several raters judged it).")  # fmt: skip
    raters = gr.Dataframe(
        headers=RATER_HEADERS, interactive=False, elem_id="raters-table", wrap=True
    )
    message = gr.Markdown(elem_id="data-status")
    with gr.Column(variant="panel", elem_id="export-panel") as export_panel:
        gr.Markdown("### Export training data")
        with gr.Row():
            fmt = gr.Dropdown(
                label="Format", choices=FORMATS, value="dpo", elem_id="export-format", scale=3
            )
            kind = gr.Radio(label="File", choices=KINDS, value="jsonl", elem_id="export-kind")
            run = gr.Button("Export", variant="primary", elem_id="export-run", scale=1)
        export_status = gr.Markdown(elem_id="export-status")
        download = gr.File(label="Download", visible=False, elem_id="export-file")

    no_export = gr.Markdown(
        "Exports of everyone's judgements need an admin key (enter one under Access).",
        visible=False,
        elem_id="export-needs-admin",
    )

    key = access.api_key
    outputs = [cards, raters, message]
    button.click(refresh, [key], outputs)
    run.click(export, [key, fmt, kind], [download, export_status])
    return DataTab(
        refresh=(refresh, [key], outputs), admin_only=[export_panel], others_only=[no_export]
    )
