"""`flywheel train` under the real `accelerate launch`: two CPU processes (DDP over gloo), one job.

The command a user types (docs/deployment.md, "Training beyond one machine") with the repo's
`configs/accelerate/cpu-ddp.yaml`, on a temp store and the tiny random Llama. Both ranks train
(each on its own share of the rows), and rank 0 alone creates the job row, writes progress,
saves, writes the lineage and registers: two job rows, doubled progress rows or a second adapter
mean that rank-awareness broke.
"""

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from feedback import Exchange, Store
from feedback.exports import export_rows, row_split
from serve.engine import free_port
from train.ranks import Ranks

CONFIGS = Path(__file__).parents[2] / "configs" / "accelerate"
CONFIG = CONFIGS / "cpu-ddp.yaml"
PROCESSES = 2
BATCH = 2  # rows per step and process
EVAL_FRACTION = 0.2


def judge(store: Store, n: int) -> None:
    """`n` decisive comparisons: a full answer preferred to a curt one."""
    for i in range(n):
        prompt = [{"role": "user", "content": f"Tell me about topic {i}."}]
        answers = {"full": f"Topic {i} is a kind and full answer.", "curt": "No."}
        store.log_exchanges(
            Exchange(id=f"{side}-{i}", model="base", engine_model="base", messages=prompt,
                     completion=text)
            for side, text in answers.items()
        )  # fmt: skip
        store.add_comparison(f"full-{i}", f"curt-{i}", "a")


def launch(*train_args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """`accelerate launch --config_file configs/accelerate/cpu-ddp.yaml -m cli train ...`"""
    command = [
        str(Path(sys.executable).with_name("accelerate")), "launch", "--config_file", str(CONFIG),
        "-m", "cli", "train", *train_args,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def launched(tiny_llama, tmp_path_factory):
    """One DPO epoch under `accelerate launch` with 2 processes: (data dir, finished process)."""
    data_dir = tmp_path_factory.mktemp("accelerate") / "home"
    judge(Store(data_dir / "flywheel.db"), 12)
    result = launch(
        "--method", "dpo", "--name", "ddp", "--model", str(tiny_llama), "--data-dir", str(data_dir),
        "--gateway", f"http://127.0.0.1:{free_port()}",  # none there: registered offline
        "--epochs", "1", "--batch-size", str(BATCH), "--max-length", "64",
        "--learning-rate", "1e-2", "--lora-r", "8", "--lora-alpha", "16",
        "--eval-fraction", str(EVAL_FRACTION), "--samples", "0", "--dtype", "float32",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return data_dir, result


def test_one_job_row_trained_by_two_processes(launched):
    data_dir, result = launched
    store = Store(data_dir / "flywheel.db")
    jobs = store.jobs()
    assert len(jobs) == 1, jobs  # rank 1 created none
    job = store.job(jobs[0]["id"])
    assert job["status"] == "succeeded", job["error"]
    assert job["config"]["world_size"] == PROCESSES
    # Both ranks ran, and the Trainer split the rows between them: each step takes BATCH rows
    # on each process, so one epoch has half the steps a single process would need.
    for rank in range(PROCESSES):
        assert f"rank {rank} of {PROCESSES} training" in result.stderr
    rows = export_rows(store, "dpo", eval_fraction=EVAL_FRACTION).rows
    n_train = sum(row_split("dpo", r, EVAL_FRACTION) == "train" for r in rows)
    assert job["config"]["train_rows"] == n_train
    assert job["total_steps"] == math.ceil(n_train / (BATCH * PROCESSES))


def test_progress_rows_are_written_once(launched):
    data_dir, _ = launched
    store = Store(data_dir / "flywheel.db")
    history = store.job(store.jobs()[0]["id"])["metrics"]
    train_steps = [row["step"] for row in history if "loss" in row]
    assert train_steps == list(range(1, len(train_steps) + 1)) and train_steps  # no doubles
    assert any("eval_loss" in row for row in history)  # evaluated over both ranks


def test_one_trained_adapter_saved_and_registered(launched, tiny_llama):
    data_dir, _ = launched
    store = Store(data_dir / "flywheel.db")
    job_id = store.jobs()[0]["id"]
    adapters = store.adapters()
    assert [(a["name"], a["job_id"]) for a in adapters] == [("ddp", job_id)]
    assert store.job(job_id)["adapter"] == adapters[0]["engine_name"]
    runs = sorted(p.name for p in (data_dir / "runs").iterdir())
    assert runs == [f"job-{job_id}"]
    folder = data_dir / "runs" / runs[0]
    assert sorted(p.name for p in folder.iterdir()) == ["adapter"]  # no .tmp, no checkpoints
    lineage = json.loads((folder / "adapter" / "lineage.json").read_text())
    assert lineage["world_size"] == PROCESSES
    assert lineage["metrics"]["world_size"] == PROCESSES  # what the Trainer ran on
    weights = load_file(folder / "adapter" / "adapter_model.safetensors")
    lora_b = [t for name, t in weights.items() if "lora_B" in name]
    assert lora_b and any(t.abs().sum() > 0 for t in lora_b)  # B starts at zero: it trained


def test_a_refused_job_ends_every_rank(tiny_llama, tmp_path):
    """Rank 0 finds nothing to train on: the other rank, waiting for its rows, exits too."""
    result = launch("--model", str(tiny_llama), "--data-dir", str(tmp_path), timeout=120)
    assert result.returncode != 0
    assert result.stderr.count("no decisive comparisons") == 1  # said once, by rank 0
    assert Store(tmp_path / "flywheel.db").jobs() == []


@pytest.mark.parametrize("name", ["cpu-ddp", "ddp", "fsdp", "deepspeed-zero2"])
def test_configs_are_accelerate_configs(name):
    """Read as `accelerate launch` reads them: a misspelt key would be silently ignored there."""
    from accelerate.commands.config.config_args import load_config_from_file
    from accelerate.commands.launch import launch_command_parser

    config = load_config_from_file(str(CONFIGS / f"{name}.yaml"))  # unknown top-level keys raise
    options = vars(launch_command_parser().parse_args(["script.py"]))
    nested = {**config.fsdp_config, **config.deepspeed_config}
    assert [key for key in nested if key not in options] == []
    assert config.num_processes >= 2


def test_only_rank_0_is_main_and_ranks_share_the_cores():
    alone = Ranks.from_env({})
    assert alone.is_main and not alone.distributed and alone.threads(2) == 2
    second = Ranks.from_env(
        {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2"}
    )
    assert not second.is_main and second.distributed and second.threads(16) == 8
    crowded = Ranks.from_env({"RANK": "0", "WORLD_SIZE": "4"})  # more ranks than cores
    assert crowded.is_main and crowded.threads(2) == 1
