"""Each export format, as written to JSONL and Parquet, is taken by its TRL trainer as it is.

One optimisation step per trainer on the tiny random Llama: the point is that TRL accepts the
columns, tokenizes them with the chat template and computes its loss, not that anything learns.
"""

import pytest

from feedback import Exchange, Store
from feedback.export_files import jsonl_lines, parquet_bytes
from feedback.exports import export_rows, kto_weights


@pytest.fixture(scope="module")
def store() -> Store:
    """Four conversations (one multi-turn), each with a comparison, thumbs and an edit."""
    store = Store(None)
    for i in range(4):
        prompt = [{"role": "user", "content": f"Question {i}?"}]
        if i == 3:
            prompt = [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Hi!"},
                {"role": "assistant", "content": "Hello."},
                *prompt,
            ]
        store.log_exchanges(
            [
                Exchange(f"g{i}", "m", "m", prompt, f"A full answer number {i}."),
                Exchange(f"b{i}", "m", "m", prompt, "No."),
            ]
        )
        store.add_comparison(f"g{i}", f"b{i}", "a", rater="alice")
        store.add_rating(f"g{i}", 1, rater="alice")
        store.add_rating(f"b{i}", -1, rater="alice")
        if i % 2:
            store.add_edit(f"b{i}", f"Corrected answer {i}.", rater="bob")
    return store


def load_both(store: Store, fmt: str, tmp_path):
    """The export as written to JSONL and to Parquet, each loaded by `datasets`; they agree."""
    from datasets import load_dataset

    export = export_rows(store, fmt)
    (tmp_path / "rows.jsonl").write_bytes(b"".join(jsonl_lines(export.rows)))
    (tmp_path / "rows.parquet").write_bytes(parquet_bytes(export))
    cache = str(tmp_path / "cache")
    jsonl = load_dataset("json", data_files=str(tmp_path / "rows.jsonl"), cache_dir=cache)
    parquet = load_dataset("parquet", data_files=str(tmp_path / "rows.parquet"), cache_dir=cache)
    assert jsonl["train"].to_list() == parquet["train"].to_list() == export.rows
    return jsonl["train"], parquet["train"], export


def common(tmp_path) -> dict:
    return {
        "output_dir": str(tmp_path / "out"),
        "max_steps": 1,
        "per_device_train_batch_size": 2,
        "learning_rate": 1e-3,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": [],
        "use_cpu": True,
        "bf16": False,
        "dataloader_num_workers": 0,
        "max_length": 128,
    }


def tokenizer_for(path):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def assert_trained(trainer) -> None:
    trainer.train()
    assert trainer.state.global_step == 1
    assert any("loss" in row for row in trainer.state.log_history)


def test_dpo_export_trains_with_dpotrainer(store, tiny_llama, tmp_path):
    from trl import DPOConfig, DPOTrainer

    jsonl, parquet, _ = load_both(store, "dpo", tmp_path)
    trainer = DPOTrainer(
        model=str(tiny_llama),
        args=DPOConfig(**common(tmp_path)),
        train_dataset=jsonl,
        eval_dataset=parquet,
        processing_class=tokenizer_for(tiny_llama),
    )
    assert_trained(trainer)


def test_kto_export_trains_with_ktotrainer(store, tiny_llama, tmp_path):
    from trl import KTOConfig, KTOTrainer

    jsonl, parquet, export = load_both(store, "kto", tmp_path)
    desirable, undesirable = kto_weights(export.rows)
    config = KTOConfig(
        **common(tmp_path), desirable_weight=desirable, undesirable_weight=undesirable
    )
    trainer = KTOTrainer(
        model=str(tiny_llama),
        args=config,
        train_dataset=parquet,
        eval_dataset=jsonl,
        processing_class=tokenizer_for(tiny_llama),
    )
    assert_trained(trainer)


def test_reward_export_trains_with_rewardtrainer(store, tiny_llama, tmp_path):
    from trl import RewardConfig, RewardTrainer

    jsonl, parquet, _ = load_both(store, "reward", tmp_path)
    trainer = RewardTrainer(
        model=str(tiny_llama),  # loaded as a sequence classifier with num_labels=1
        args=RewardConfig(**common(tmp_path)),
        train_dataset=parquet,
        eval_dataset=jsonl,
        processing_class=tokenizer_for(tiny_llama),
    )
    assert trainer.model.config.num_labels == 1
    assert_trained(trainer)


def test_sft_export_trains_with_sfttrainer(store, tiny_llama, tmp_path):
    from trl import SFTConfig, SFTTrainer

    jsonl, parquet, _ = load_both(store, "sft", tmp_path)
    trainer = SFTTrainer(
        model=str(tiny_llama),
        args=SFTConfig(**common(tmp_path)),
        train_dataset=jsonl,
        eval_dataset=parquet,
        processing_class=tokenizer_for(tiny_llama),
    )
    assert_trained(trainer)
