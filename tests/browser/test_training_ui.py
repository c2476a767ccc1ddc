"""The Training tab: start a job, watch it train, chat with its adapter; cancel; clear failures."""

from __future__ import annotations

import httpx
import pytest

from feedback import Store
from feedback.api_keys import ApiKeys
from tests.browser.pages import ask, open_tab, short_answers, status, wait_for_keys
from tests.polling import wait_for
from ui.training_tab import log_html, loss_svg, progress_html

pytestmark = pytest.mark.browser

TRAIN_S = 900  # a model load and two DPO steps on a 2-core box that also serves the engine


def job_box(page) -> dict:
    """The progress box's state: status, step, total (empty before a job is shown)."""
    box = page.locator("#train-progress-box")
    if not box.count():
        return {}
    return {name: box.get_attribute(f"data-{name}") for name in ("job", "status", "step", "total")}


def points(page, series: str) -> int:
    group = page.locator(f'#train-plot g[data-series="{series}"]')
    return int(group.get_attribute("data-points")) if group.count() else 0


def start_job(page, name: str, **fields) -> int:
    """Fill the form, start, and return the new job's id once the page shows it."""
    page.locator("#train-start").wait_for()
    previous = job_box(page).get("job")
    page.locator("#train-name input, #train-name textarea").first.fill(name)
    if fields:  # unticked, the fields are hidden and the job runs the recipe
        page.locator("#train-by-hand input").check()
        page.locator("#train-params").wait_for()
    for field, value in fields.items():
        page.locator(f"#train-{field} input").fill(str(value))
    page.locator("#train-start").click()

    def new_job() -> str | None:
        shown = job_box(page).get("job")
        return shown if shown not in (None, previous) else None

    return int(wait_for(new_job, what="the new job on the page"))


def train_status(page) -> str:
    return status(page, "#train-status")


def job_on_gateway(stack, job_id: int) -> dict:
    return httpx.get(f"{stack.api}/train/jobs/{job_id}", timeout=30).json()


def test_train_dpo_watch_it_and_chat_with_the_adapter(
    page, stack, store, trained_adapter, screenshot
):
    assert trained_adapter.result.returncode == 0  # the stored comparisons make DPO pairs
    open_tab(page, "Training")
    # another rate than the CLI-trained fixture's: the same job would make the same weights,
    # which the registry keeps once (under the fixture's name)
    job_id = start_job(page, "ui-train", **{"max-steps": 2, "learning-rate": 5e-4})

    # The bar and the curve fill in while it runs: seen at step 1 of 2, before the end.
    wait_for(
        lambda: job_box(page).get("step") == "1" and points(page, "loss") == 1,
        timeout=TRAIN_S,
        what="step 1 on the progress bar and in the loss plot",
    )
    assert job_box(page)["total"] == "2"
    assert job_box(page)["status"] == "running"
    bar = page.locator("#train-progress-bar").get_attribute("style")
    assert "width: 50.0%" in bar

    wait_for(
        lambda: job_box(page).get("status") in ("succeeded", "failed", "cancelled"),
        timeout=TRAIN_S,
        what="the job to finish",
    )
    job = job_on_gateway(stack, job_id)
    assert job["status"] == "succeeded", job
    adapter = job["adapter"]
    assert adapter.startswith("ui-train@")
    wait_for(lambda: adapter in train_status(page), what="the adapter named in the status")
    assert page.locator("#train-adapter").inner_text() == adapter
    assert job_box(page)["step"] == "2" and points(page, "loss") == 2
    assert "rewards/accuracies" in {k for row in job["metrics"] for k in row}
    assert points(page, "rewards/accuracies") >= 1  # DPO: the reward accuracy is drawn too
    assert points(page, "eval_loss") == len([r for r in job["metrics"] if "eval_loss" in r])
    assert "trained: " in page.locator("#train-log-text").inner_text()  # the console's last lines
    row = page.locator("#train-jobs").get_by_role("row").filter(has_text=adapter)
    assert "succeeded" in row.inner_text()
    assert not page.locator("#train-cancel").is_enabled()  # nothing left to cancel
    screenshot("ui-training.png")

    # The new version is served: the arena pairs it, and the Chat picker offers it (no reload).
    served = {m["id"] for m in httpx.get(f"{stack.api}/models").json()["data"]}
    assert adapter in served
    listed = {a["engine_name"]: a for a in httpx.get(f"{stack.api}/adapters").json()}
    assert listed[adapter]["status"] == "candidate" and listed[adapter]["job_id"] == job_id
    open_tab(page, "Chat")
    page.locator("#model input").click()
    page.get_by_role("option", name=adapter, exact=True).click()
    wait_for(lambda: page.locator("#model input").input_value() == adapter, what="the pick")
    short_answers(page)
    exchange = ask(page, store, "Tell me one fact about the moon.")
    assert exchange["engine_model"] == adapter  # served by the version this job trained


def test_cancel_a_running_job_and_one_job_at_a_time(page, stack, trained_adapter):
    assert trained_adapter.result.returncode == 0
    open_tab(page, "Training")
    job_id = start_job(page, "ui-cancel", **{"max-steps": 500})
    wait_for(lambda: job_box(page).get("status") == "running", timeout=300, what="running")
    assert page.locator("#train-cancel").is_enabled()

    page.locator("#train-start").click()  # a second job while this one runs: refused, clearly
    wait_for(lambda: "one job at a time" in train_status(page), what="the 409 explained")
    assert f"job {job_id} is still running" in train_status(page)
    assert job_box(page)["job"] == str(job_id)  # still showing the running job

    page.locator("#train-cancel").click()
    wait_for(lambda: job_box(page).get("status") == "cancelled", timeout=300, what="cancelled")
    wait_for(lambda: "was cancelled" in train_status(page), what="the status line")
    job = job_on_gateway(stack, job_id)
    assert job["status"] == "cancelled" and job["adapter"] is None
    row = page.locator("#train-jobs").get_by_role("row").filter(has_text="cancelled").first
    assert str(job_id) in row.inner_text()

    # Any earlier job can be looked at again: click its row.
    trained = page.locator("#train-jobs").get_by_role("row").filter(has_text="ui-train@").first
    trained.get_by_role("gridcell").nth(2).click()
    wait_for(lambda: job_box(page).get("status") == "succeeded", what="the chosen job shown")
    assert "ui-train@" in page.locator("#train-adapter").inner_text()
    assert points(page, "loss") >= 1


def test_a_failed_job_says_why(page, stack, trained_adapter):
    assert trained_adapter.result.returncode == 0
    open_tab(page, "Training")
    page.locator("#train-synthetic input").wait_for()
    # Best-of-n pairs need a trained reward model. Other tests in this session may have trained
    # one in the shared stack: its folder is moved aside for this test, so there is none.
    reward_jobs = Store(stack.data_dir / "flywheel.db").query(
        "select id from jobs where method = 'reward'"
    )
    folders = [stack.data_dir / "runs" / f"job-{j['id']}" / "adapter" for j in reward_jobs]
    hidden = [(d, d.with_name("adapter.hidden")) for d in folders if d.is_dir()]
    for folder, aside in hidden:
        folder.rename(aside)
    try:
        page.locator("#train-synthetic input").fill("4")
        start_job(page, "ui-fails", **{"max-steps": 1})
        wait_for(lambda: job_box(page).get("status") == "failed", timeout=300, what="the failure")
        wait_for(lambda: "failed: " in train_status(page), what="the failure explained")
        assert "no reward model" in train_status(page)
    finally:
        for folder, aside in hidden:
            aside.rename(folder)


def test_a_user_key_watches_but_cannot_start_or_cancel(page, stack, store):
    api_keys = ApiKeys(store)
    user, secret = api_keys.create("ui-train-user", "user")
    wait_for_keys(stack.api, required=True)
    try:
        page.locator("#access").get_by_text("Access").first.click()
        page.locator("#api-key input").fill(secret)
        page.locator("#api-key input").press("Enter")
        wait_for(lambda: "user key" in page.locator("#role").inner_text(), what="the user role")
        open_tab(page, "Training")
        page.locator("#train-needs-admin").wait_for()  # says why the form is missing
        assert not page.locator("#train-start").is_visible()
        assert not page.locator("#train-cancel").is_visible()
        assert page.locator("#train-jobs").is_visible()  # anyone may watch
    finally:
        api_keys.revoke(user["id"])
        wait_for_keys(stack.api, required=False)  # other tests run keyless again


# -- what the tab draws, checked without a browser --------------------------------------------

RUNNING = {"id": 7, "method": "dpo", "status": "running", "step": 3, "total_steps": 10,
           "created_at": "2026-01-01T00:00:00+00:00", "adapter": None}  # fmt: skip


def test_the_plot_draws_train_and_eval_loss_and_reward_accuracy():
    rows = [{"step": 1, "loss": 0.69, "rewards/accuracies": 0.5}, {"step": 1, "eval_loss": 0.7},
            {"step": 2, "loss": 0.6, "rewards/accuracies": 1.0},
            {"step": 2, "train_loss": 0.65, "train_runtime": 9.0}]  # fmt: skip
    svg = loss_svg(RUNNING | {"metrics": rows})
    assert 'data-series="loss" data-points="2"' in svg
    assert 'data-series="eval_loss" data-points="1"' in svg
    assert 'data-series="rewards/accuracies" data-points="2"' in svg
    assert "train_loss" not in svg  # the run's summary row is not a point of the curve


def test_before_the_first_step_the_plot_says_it_is_waiting():
    assert "Waiting for the first step" in loss_svg(RUNNING | {"metrics": []})
    assert "No training job yet" in loss_svg(None)


def test_progress_and_log_are_escaped_text():
    box = progress_html(RUNNING | {"status": "succeeded", "adapter": "<b>x</b>@1"})
    assert "&lt;b&gt;x&lt;/b&gt;@1" in box and "<b>x</b>" not in box
    assert 'data-step="3" data-total="10"' in box and "width: 100.0%" in box  # done: full
    assert "&lt;script&gt;" in log_html(["<script>alert(1)</script>"])
