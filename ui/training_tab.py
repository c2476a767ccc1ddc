"""The Training tab: start a job, watch it train (progress, loss curve, log), cancel it.

Jobs run in the gateway (`POST /v1/train/jobs`), one at a time; the page polls
`GET /v1/train/jobs/{id}` with a timer while the job it shows is queued or running, and stops
when it ends. A job that succeeds registers a candidate adapter: the tab puts its name in
`trained`, which the app uses to refresh the Chat tab's model picker (the arena pairs every
served candidate by itself). Starting and cancelling are admin routes, hidden from user keys;
anyone may watch. The promotion gate's decisions are listed read-only.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import UTC, datetime

import gradio as gr

from ui.access import Access, error_text
from ui.client import GatewayError
from ui.loss_plot import curves_svg

POLL_S = 1.5  # progress and curve refresh while a job runs; a DPO step takes 10-20 s here
ACTIVE = ("queued", "running")
METHODS = [
    ("DPO — preference pairs (comparisons, arena votes)", "dpo"),
    ("KTO — thumbs up and down", "kto"),
    ("SFT — liked and edited answers", "sft"),
    ("Reward model — scores best-of-n pairs (not served)", "reward"),
]
# Unless "Set parameters by hand" is ticked, the form sends no parameter: the job then runs the
# recipe every door runs (`flywheel train`, the API, `flywheel loop`), chosen from its data.
# Ticked, the fields start at the defaults of `flywheel train --help` (the learning rate
# follows the method), and every value shown is sent: an empty number field reads as 0.
DEFAULT_LR = {"dpo": 1e-3, "kto": 5e-4, "reward": 5e-4, "sft": 2e-4}
DEFAULT_EPOCHS = {"dpo": 1, "kto": 3, "reward": 1, "sft": 3}
PARAMS = (  # (request key, label, default, precision: 0 for whole numbers, -1 allowed)
    ("learning_rate", "Learning rate", DEFAULT_LR["dpo"], None, False),
    ("epochs", "Epochs", DEFAULT_EPOCHS["dpo"], None, False),
    ("max_steps", "Max steps (-1: by epochs)", -1, 0, True),
    ("batch_size", "Batch size", 8, 0, False),
    ("lora_r", "LoRA rank", 16, 0, False),
)
BADGES = {
    "queued": "… queued",
    "running": "▶ running",
    "succeeded": "✔ succeeded",
    "failed": "✗ failed",
    "cancelled": "■ cancelled",
}
BAR_COLORS = {
    "queued": "#9ca3af",
    "running": "#2563eb",
    "succeeded": "#16a34a",
    "failed": "#dc2626",
    "cancelled": "#6b7280",
}
JOB_HEADERS = ["Job", "Method", "Status", "Steps", "Adapter", "Started (UTC)", "Took", "Error"]
DECISION_HEADERS = ["When (UTC)", "Candidate", "Live before", "Decision", "Reason"]


def keep(n: int = 1) -> tuple:
    """`n` outputs left as they are (fresh dicts: Gradio is handed each one)."""
    return tuple(gr.update() for _ in range(n))


@dataclass
class TrainingTab:
    refresh: tuple  # (fn, inputs, outputs): on load, on tab select
    trained: gr.State  # the newest adapter a watched job produced: changes when one succeeds
    admin_only: list
    others_only: list


# -- pictures --------------------------------------------------------------------------------


def _when(stamp: str | None) -> datetime | None:
    try:
        return datetime.fromisoformat(stamp) if stamp else None
    except ValueError:
        return None


def _took(job: dict) -> str:
    start = _when(job.get("created_at"))
    end = _when(job.get("finished_at")) or (
        datetime.now(UTC) if job.get("status") in ACTIVE else None
    )
    if start is None or end is None:
        return ""
    seconds = max(0, int((end - start).total_seconds()))
    if seconds >= 3600:
        return f"{seconds // 3600}h {seconds // 60 % 60:02d}m"
    return f"{seconds // 60}m {seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def progress_html(job: dict | None) -> str:
    if job is None:
        return '<div class="fw-empty" id="train-progress-empty">No training job yet.</div>'
    status, step, total = job["status"], job.get("step") or 0, job.get("total_steps") or 0
    share = 1.0 if status == "succeeded" else (min(step / total, 1.0) if total else 0.0)
    adapter = job.get("adapter")
    facts = [
        f"<b>Job {job['id']}</b> · {html.escape(job['method'].upper())}",
        html.escape(BADGES.get(status, status)),
        f"step {step} / {total or '?'}",
        _took(job),
    ]
    if adapter:
        facts.append(f'adapter <code id="train-adapter">{html.escape(adapter)}</code>')
    return (
        f'<div id="train-progress-box" data-job="{job["id"]}" data-status="{html.escape(status)}" '
        f'data-step="{step}" '
        f'data-total="{total}" style="margin: 4px 0 8px">'
        '<div style="display: flex; justify-content: space-between; gap: 12px; '
        'margin-bottom: 6px">'
        f'<span id="train-progress-text">{" · ".join(f for f in facts if f)}</span>'
        f"<span><b>{share:.0%}</b></span></div>"
        f'<div role="progressbar" aria-valuemin="0" aria-valuemax="{total}" '
        f'aria-valuenow="{step}" style="height: 14px; border-radius: 7px; overflow: hidden; '
        "background: var(--background-fill-secondary); "
        'border: 1px solid var(--border-color-primary)">'
        f'<div id="train-progress-bar" style="width: {share * 100:.1f}%; height: 100%; '
        f'background: {BAR_COLORS.get(status, "#2563eb")}; transition: width 0.6s"></div>'
        "</div></div>"
    )


def loss_svg(job: dict | None) -> str:
    """The job's curves (ui/loss_plot.py), or a line saying why there are none yet."""
    metrics = (job or {}).get("metrics") or []
    if svg := curves_svg(metrics, float((job or {}).get("total_steps") or 0)):
        return svg
    if job is None:
        text = "No training job yet: start one above and its loss curve is drawn here."
    elif job["status"] in ACTIVE:
        text = "Waiting for the first step (loading the model and the data takes a while)…"
    else:
        text = "This job logged no metrics."
    return f'<div class="fw-empty" id="train-plot-empty">{html.escape(text)}</div>'


def job_rows(jobs: list[dict]) -> list[list]:
    return [
        [
            j["id"],
            j["method"].upper(),
            BADGES.get(j["status"], j["status"]),
            f"{j.get('step') or 0} / {j.get('total_steps') or '?'}",
            j.get("adapter") or "—",
            (j.get("created_at") or "")[:19].replace("T", " "),
            _took(j),
            (j.get("error") or "")[:300],
        ]
        for j in jobs
    ]


def decision_rows(decisions: list[dict]) -> list[list]:
    return [
        [
            (d.get("created_at") or "")[:19].replace("T", " "),
            d["candidate"],
            d.get("incumbent") or "base",
            d["action"],
            d["reason"],
        ]
        for d in decisions
    ]


def job_message(job: dict) -> str:
    """What the status line says about a job, by its state."""
    number, status = f"job {job['id']}", job["status"]
    if status == "queued":
        return f"… {number} is queued: the trainer is starting"
    if status == "running":
        return f"▶ {number} is training: progress and curve update as steps finish"
    if status == "failed":
        return f"✗ {number} failed: {job.get('error') or 'no reason recorded'}"
    if status == "cancelled":
        return f"■ {number} was cancelled: no adapter was kept"
    if not job.get("adapter"):
        return f"✔ {number} succeeded (a reward model: it scores best-of-n pairs, it is not served)"
    return (
        f"✔ {number} succeeded: adapter `{job['adapter']}` is registered as a candidate. "
        "Pick it in the Chat tab's model picker; the arena pairs it with the live model."
    )


def decisions_update(decisions: list[dict]) -> dict:
    """The gate's table, its label saying how many (or why none yet)."""
    label = (
        f"{len(decisions)} decisions, newest first"
        if decisions
        else "No decisions yet: the loop decides once a candidate has enough arena votes"
    )
    return gr.update(value=decision_rows(decisions), label=label)


def log_html(lines: list[str]) -> str:
    """The log's last lines in a box that stays scrolled to its end (column-reverse)."""
    text = html.escape("\n".join(lines)) or "(no output yet)"
    return (
        '<div style="display: flex; flex-direction: column-reverse; max-height: 260px; '
        "overflow: auto; border: 1px solid var(--border-color-primary); border-radius: 8px; "
        'background: var(--background-fill-secondary)">'
        '<pre id="train-log-text" style="margin: 0; padding: 8px 12px; font-size: 12px; '
        f'line-height: 1.45; white-space: pre-wrap; word-break: break-all">{text}</pre></div>'
    )


def _base_choices(adapters: list[dict]) -> list[tuple[str, str]]:
    choices = [("base model (a new LoRA)", "base"), ("live model", "live")]
    served = [a for a in adapters if a["status"] != "retired"]
    return choices + [
        (f"continue {a['engine_name']} ({a['status']})", a["engine_name"]) for a in served
    ]


# -- the tab ---------------------------------------------------------------------------------


def build_training_tab(access: Access) -> TrainingTab:
    def watch(job: dict | None, message: str | None = None):
        """The outputs that show one job: progress, curve, log, cancel, status, timer."""
        active = job is not None and job["status"] in ACTIVE
        return (
            progress_html(job),
            loss_svg(job),
            log_html((job or {}).get("log_tail") or []),
            gr.update(interactive=active),
            message if message is not None else (job_message(job) if job else ""),
            job["id"] if job else None,
            job["status"] if job else None,
            gr.Timer(active=active),
        )

    def say(message: str, after: int) -> tuple:
        """Only the status line changes (it comes fifth in `shown`); `after` outputs follow."""
        return *keep(4), message, *keep(after)

    def lists(client) -> tuple:
        """The jobs, the gate's decisions and the models to continue from, as outputs."""
        base = gr.update(choices=_base_choices(client.adapters()))
        return job_rows(client.jobs()), decisions_update(client.decisions()), base

    def refresh(api_key, watched):
        """Everything, for the job being watched (none yet: the newest one)."""
        client = access.client(api_key)
        try:
            jobs = client.jobs()
            running = next((j for j in jobs if j["status"] in ACTIVE), None)
            job_id = (running or {}).get("id") or watched or (jobs[0]["id"] if jobs else None)
            job = client.job(job_id) if job_id else None
            return *watch(job), *lists(client)
        except Exception as exc:
            return say(f"⚠ {error_text(exc)}", 6)

    def tick(api_key, watched, last_status):
        """One poll of the watched job; the tables and the picker only when its state changes."""
        if watched is None:
            return *keep(7), gr.Timer(active=False), *keep(4)
        client = access.client(api_key)
        try:
            job = client.job(watched)
        except Exception as exc:
            return say(f"⚠ {error_text(exc)}", 7)  # the timer goes on: the next poll retries
        if job["status"] == last_status:
            return *watch(job, message=gr.update()), *keep(4)
        try:
            listed = lists(client)
        except Exception:
            listed = keep(3)
        trained = job["adapter"] if job["status"] == "succeeded" and job["adapter"] else gr.update()
        return *watch(job), *listed, trained

    def start(api_key, method, name, base, synthetic, by_hand, *values):
        params = {}
        for (key, label, _, precision, minus_one), value in zip(PARAMS, values, strict=True):
            if not by_hand:
                break
            if value is None or (value <= 0 and not (minus_one and value == -1)):
                allowed = " (or -1)" if minus_one else ""
                return say(f"⚠ {label}: give a number above 0{allowed}", 4)
            params[key] = int(value) if precision == 0 else float(value)
        client = access.client(api_key)
        try:
            job = client.start_job(
                method,
                (name or "").strip() or None,
                None if base in (None, "base") else base,
                params,
                int(synthetic or 0) if method == "dpo" else 0,
            )
        except Exception as exc:
            if isinstance(exc, GatewayError) and exc.status == 409:
                return already_running(client, exc)
            return say(f"⚠ could not start: {error_text(exc)}", 4)
        return *watch(job, f"▶ started job {job['id']} ({method.upper()})"), job_rows(client.jobs())

    def already_running(client, exc: GatewayError):
        """409: show the job that is running instead, with the gateway's words."""
        message = f"⚠ one job at a time, and one is running: {error_text(exc)}"
        try:
            jobs = client.jobs()
            running = next((j for j in jobs if j["status"] in ACTIVE), None)
            job = client.job(running["id"]) if running else None
        except Exception:
            return say(message, 4)
        return *watch(job, message), job_rows(jobs)

    def cancel(api_key, watched):
        if watched is None:
            return "⚠ no job to cancel"
        try:
            access.client(api_key).cancel_job(watched)
        except Exception as exc:
            return f"⚠ could not cancel: {error_text(exc)}"
        return f"■ cancelling job {watched}…"

    def pick_job(api_key, evt: gr.SelectData):
        row = evt.row_value or []
        if not row:
            return keep(8)
        try:
            return watch(access.client(api_key).job(int(row[0])))
        except Exception as exc:
            return say(f"⚠ {error_text(exc)}", 3)

    def method_changed(method):
        return (
            DEFAULT_LR.get(method, 5e-4),
            DEFAULT_EPOCHS.get(method, 3),
            gr.update(visible=method == "dpo"),
            gr.update(placeholder=f"default {method}-jobN"),
        )

    # -- layout ------------------------------------------------------------------------------

    with gr.Column(variant="panel", elem_id="train-form") as form:
        gr.Markdown("### Train an adapter from the judgements collected so far")
        with gr.Row():
            method = gr.Dropdown(
                label="Method", choices=METHODS, value="dpo", elem_id="train-method", scale=3
            )
            name = gr.Textbox(
                label="Adapter name", placeholder="default dpo-jobN", elem_id="train-name"
            )
            base = gr.Dropdown(
                label="Start from",
                choices=_base_choices([]),
                value="base",
                elem_id="train-base",
                scale=2,
            )
        with gr.Row():
            by_hand = gr.Checkbox(
                label="Set parameters by hand",
                value=False,
                elem_id="train-by-hand",
                info="unticked: the measured recipe, chosen from the data (the one flywheel "
                "loop runs)",
                scale=3,
            )
            synthetic = gr.Number(
                label="Synthetic pairs (best-of-n)",
                value=0,
                precision=0,
                minimum=0,
                elem_id="train-synthetic",
                min_width=120,
                info="needs a trained reward model",
            )
        with gr.Row(visible=False, elem_id="train-params") as by_hand_row:
            fields = [
                gr.Number(
                    value=default,
                    label=label,
                    precision=precision,
                    elem_id=f"train-{key.replace('_', '-')}",
                    min_width=120,
                )
                for key, label, default, precision, _ in PARAMS
            ]
        start_button = gr.Button("▶ Start training", variant="primary", elem_id="train-start")
    need_admin = gr.Markdown(
        "Starting and cancelling training jobs need an admin key (enter one under Access); "
        "anyone can watch them here.",
        visible=False,
        elem_id="train-needs-admin",
    )
    with gr.Row(equal_height=True):
        status = gr.Markdown(elem_id="train-status")
        cancel_button = gr.Button(
            "■ Cancel job",
            variant="stop",
            interactive=False,
            elem_id="train-cancel",
            size="sm",
            scale=0,
            min_width=130,
        )
        reload = gr.Button("↻ Refresh", elem_id="train-refresh", size="sm", scale=0, min_width=110)
    progress = gr.HTML(progress_html(None), elem_id="train-progress")
    plot = gr.HTML(loss_svg(None), elem_id="train-plot")
    with gr.Accordion("Log (its last lines)", open=True, elem_id="train-log-box"):
        log = gr.HTML(log_html([]), elem_id="train-log")
    gr.Markdown("### Jobs\nClick a row to show that job above.")
    jobs_table = gr.Dataframe(
        headers=JOB_HEADERS, interactive=False, wrap=True, elem_id="train-jobs", max_height=360
    )
    gr.Markdown(
        "### Promotion gate\nThe loop (`flywheel loop`) promotes a candidate once arena votes "
        "show it beats the live model, and retires it when they show it does not."
    )
    decisions_table = gr.Dataframe(
        headers=DECISION_HEADERS,
        label="Decisions",
        show_label=True,
        interactive=False,
        wrap=True,
        elem_id="train-decisions",
    )
    timer = gr.Timer(POLL_S, active=False)
    watched, last_status, trained = gr.State(None), gr.State(None), gr.State(None)

    # -- events ------------------------------------------------------------------------------

    key = access.api_key
    shown = [progress, plot, log, cancel_button, status, watched, last_status, timer]
    everything = [*shown, jobs_table, decisions_table, base]
    quiet = {"show_progress": "hidden"}
    reload.click(refresh, [key, watched], everything, **quiet)
    timer.tick(
        tick,
        [key, watched, last_status],
        [*shown, jobs_table, decisions_table, base, trained],
        trigger_mode="once",
        **quiet,
    )
    start_button.click(
        start,
        [key, method, name, base, synthetic, by_hand, *fields],
        [*shown, jobs_table],
        **quiet,
    )
    by_hand.change(lambda ticked: gr.update(visible=ticked), [by_hand], [by_hand_row], **quiet)
    cancel_button.click(cancel, [key, watched], [status], **quiet)
    jobs_table.select(pick_job, [key], shown, **quiet)
    method.change(method_changed, [method], [fields[0], fields[1], synthetic, name], **quiet)
    return TrainingTab(
        refresh=(refresh, [key, watched], everything),
        trained=trained,
        admin_only=[form, cancel_button],
        others_only=[need_admin],
    )
