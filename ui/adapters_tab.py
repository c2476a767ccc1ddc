"""The Adapters tab: every registered LoRA version, its lineage, and (admin) promote/rollback.

Promote and roll back are admin routes: with a user key these controls are hidden, and the
gateway would refuse them anyway.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from ui.access import Access, error_text

HEADERS = ["Name", "Version", "Served as", "Status", "Parent", "Data set", "Job", "Created"]
STATUS_BADGES = {"live": "● live", "candidate": "○ candidate", "retired": "– retired"}


@dataclass
class AdaptersTab:
    refresh: tuple  # (fn, inputs, outputs)
    admin_only: list  # components shown to admin keys only
    others_only: list  # shown instead, to keys that are not admin


def _metrics(row: dict) -> str:
    """Training metrics, when the gateway reports them (a dict, or its JSON text)."""
    metrics = row.get("metrics")
    if isinstance(metrics, str):
        try:
            metrics = json.loads(metrics)
        except ValueError:
            return metrics
    if not isinstance(metrics, dict) or not metrics:
        return ""
    shown = []
    for key, value in list(metrics.items())[:4]:
        shown.append(f"{key}={value:.3g}" if isinstance(value, float) else f"{key}={value}")
    return ", ".join(shown)


def adapter_table(adapters: list[dict]) -> dict:
    """Headers and rows; a Metrics column once the gateway reports training metrics."""
    rows = [
        [
            a["name"],
            a["version"],
            a["engine_name"],
            STATUS_BADGES.get(a["status"], a["status"]),
            a.get("parent") or "—",
            (a.get("dataset_hash") or "—")[:12],
            a.get("job_id") if a.get("job_id") is not None else "—",
            (a.get("created_at") or "")[:19].replace("T", " "),
        ]
        for a in adapters
    ]
    metrics = [_metrics(a) for a in adapters]
    if not any(metrics):
        return {"headers": HEADERS, "data": rows}
    with_metrics = [[*r, m] for r, m in zip(rows, metrics, strict=True)]
    return {"headers": [*HEADERS, "Metrics"], "data": with_metrics}


def build_adapters_tab(access: Access) -> AdaptersTab:
    def refresh(api_key, include_retired):
        try:
            adapters = access.client(api_key).adapters(bool(include_retired))
        except Exception as exc:
            return gr.update(), gr.update(), f"⚠ {error_text(exc)}"
        live = [a["engine_name"] for a in adapters if a["status"] == "live"]
        names = [a["engine_name"] for a in adapters if a["status"] != "retired"]
        note = f"Live: `{live[0]}`" if live else "Live: the base model (no adapter promoted)"
        if not adapters:
            note = "No adapters yet: train one (`flywheel train`) or register a LoRA folder."
        return adapter_table(adapters), gr.update(choices=names, value=None), note

    def change(action: str, api_key, engine_name, include_retired):
        if not engine_name:
            return gr.update(), gr.update(), "⚠ choose a version first"
        name, _, version = engine_name.partition("@")
        client = access.client(api_key)
        try:
            if action == "promote":
                result = client.promote(name, int(version) if version.isdigit() else None)
                message = f"✔ `{result.get('live')}` is live (was `{result.get('previous')}`)"
            else:
                result = client.rollback(name)
                message = f"↶ `{result.get('live') or 'the base model'}` is live again"
        except Exception as exc:
            return gr.update(), gr.update(), f"⚠ {error_text(exc)}"
        rows, choices, _ = refresh(api_key, include_retired)
        if engine_name in choices.get("choices", []):
            choices["value"] = engine_name  # the chosen version stays chosen
        return rows, choices, message

    with gr.Row():
        include_retired = gr.Checkbox(label="Show retired versions", elem_id="adapters-retired")
        button = gr.Button(
            "↻ Refresh", elem_id="adapters-refresh", size="sm", scale=0, min_width=110
        )
    table = gr.Dataframe(
        headers=HEADERS,
        interactive=False,
        elem_id="adapters-table",
        wrap=True,
    )
    status = gr.Markdown(elem_id="adapters-status")
    with gr.Row(elem_id="adapters-admin", visible=True) as admin_row:
        pick = gr.Dropdown(label="Version", choices=[], elem_id="adapter-pick", scale=3)
        promote = gr.Button("Promote to live", variant="primary", elem_id="adapter-promote")
        rollback = gr.Button("Roll back", variant="stop", elem_id="adapter-rollback")
    admin_note = gr.Markdown(
        "Promote makes the chosen version the `live` model at once; roll back puts back the "
        "version that was live before it and retires it.",
        elem_id="adapters-admin-note",
    )

    no_changes = gr.Markdown(
        "Promoting and rolling back adapters need an admin key (enter one under Access).",
        visible=False,
        elem_id="adapters-need-admin",
    )

    key = access.api_key
    outputs = [table, pick, status]
    button.click(refresh, [key, include_retired], outputs)
    include_retired.change(refresh, [key, include_retired], outputs)
    for action, control in (("promote", promote), ("rollback", rollback)):
        control.click(
            lambda k, n, r, a=action: change(a, k, n, r), [key, pick, include_retired], outputs
        )
    return AdaptersTab(
        refresh=(refresh, [key, include_retired], outputs),
        admin_only=[admin_row, admin_note],
        others_only=[no_changes],
    )
