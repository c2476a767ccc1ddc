"""The new adapter against the base model, on held-out rows, and answers side by side.

After training, every method reports how its kept model compares with the base model:
- DPO/KTO: TRL's evaluation of the policy against the base reference (eval loss, reward margins,
  and for DPO the reward accuracy: how often the held-out chosen answer gains more than the
  rejected one over the base);
- reward model: pairwise accuracy, how often it scores the held-out chosen answer higher (the
  base has no score head to compare with: a new, random one scores at chance);
- SFT: eval loss of the base (adapter disabled) and of the tuned model on the same rows.
`sample_side_by_side` answers a few prompts greedily with the base and with the adapter, to be
saved with the job: numbers say whether it learnt, answers say what.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

DPO_KTO_KEYS = (
    "loss",
    "rewards/accuracies",
    "rewards/margins",
    "rewards/chosen",
    "rewards/rejected",
    "kl",
)


def _floats(metrics: dict[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}


def preference_eval(trainer) -> dict[str, float]:
    """DPO/KTO: the kept adapter against the base reference on the trainer's eval rows."""
    metrics = _floats(trainer.evaluate())
    return {f"eval_{k}": metrics[f"eval_{k}"] for k in DPO_KTO_KEYS if f"eval_{k}" in metrics}


def sft_eval(trainer) -> dict[str, float]:
    """SFT: eval loss of the base model and of the tuned one, on the same held-out rows."""
    model = trainer.accelerator.unwrap_model(trainer.model)
    with model.disable_adapter():
        base = _floats(trainer.evaluate(metric_key_prefix="eval_base"))
    tuned = _floats(trainer.evaluate())
    return {"eval_base_loss": base["eval_base_loss"], "eval_loss": tuned["eval_loss"]}


def reward_scores(model, tokenizer, conversations: list[list[dict]], batch_size: int = 8):
    """One score per conversation (a list of messages), from a sequence-classification model.

    Batches are cut from the conversations sorted by length, so a batch pads little: best-of-n
    scores hundreds of answers from a few words to the token limit.
    """
    import torch

    ids = [
        tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"]
        for c in conversations
    ]
    order = sorted(range(len(ids)), key=lambda i: len(ids[i]))
    scores: list[float] = [0.0] * len(ids)
    model.eval()
    device = next(model.parameters()).device
    half = any(p.dtype == torch.bfloat16 for p in model.parameters())
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = [ids[i] for i in rows]
        width = max(len(x) for x in batch)  # right padding: the score is read at the last token
        input_ids = torch.tensor([x + [tokenizer.pad_token_id] * (width - len(x)) for x in batch])
        mask = torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in batch])
        with torch.no_grad(), torch.autocast(device.type, torch.bfloat16, enabled=half):
            logits = model(input_ids=input_ids.to(device), attention_mask=mask.to(device)).logits
        for i, score in zip(rows, logits[:, 0].float().tolist(), strict=True):
            scores[i] = score
    return scores


def pairwise_accuracy(model, tokenizer, pairs: list[dict[str, Any]]) -> float:
    """Share of `{prompt?, chosen, rejected}` pairs where score(chosen) > score(rejected)."""
    if not pairs:
        raise ValueError("no pairs to measure the reward model's accuracy on")
    chosen = reward_scores(model, tokenizer, [p.get("prompt", []) + p["chosen"] for p in pairs])
    rejected = reward_scores(model, tokenizer, [p.get("prompt", []) + p["rejected"] for p in pairs])
    return sum(c > r for c, r in zip(chosen, rejected, strict=True)) / len(pairs)


def reward_eval(trainer, eval_rows: list[dict[str, Any]]) -> dict[str, float]:
    """Reward model: pairwise accuracy and mean margin on the held-out pairs."""
    metrics = _floats(trainer.evaluate())
    model = trainer.accelerator.unwrap_model(trainer.model)
    out = {k: metrics[k] for k in ("eval_loss", "eval_accuracy", "eval_margin") if k in metrics}
    out["eval_pairwise_accuracy"] = pairwise_accuracy(model, trainer.processing_class, eval_rows)
    return out


def sample_side_by_side(
    model_path: str,
    adapter_path: str | Path,
    prompts: list[str | list[dict]],
    max_new_tokens: int = 64,
    dtype: str = "auto",
    threads: int = 0,
) -> list[dict[str, Any]]:
    """Greedy answers of the base model and of base + adapter: `[{prompt, base, tuned}]`.

    A prompt is a user message or a list of messages. Meant for a handful of prompts (e.g. 4):
    one batch per side, through HF transformers, on the CPU the job already runs on.
    """
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from common.hardware import choose_dtype, cpu_threads
    from train.spare_cores import SpareCores

    # Decoding is hundreds of tiny ops: with more threads than free cores each one waits for a
    # queued thread. Beside a busy engine, 4 prompts took 15+ minutes with 2 threads on 2 cores.
    spare = None if threads else SpareCores(cpu_threads())
    if threads:
        torch.set_num_threads(threads)
    tokenizer = AutoTokenizer.from_pretrained(model_path, padding_side="left")
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    torch_dtype = getattr(torch, choose_dtype() if dtype == "auto" else dtype)
    base = AutoModelForCausalLM.from_pretrained(model_path, dtype=torch_dtype)
    model = PeftModel.from_pretrained(base, str(adapter_path)).eval()
    conversations = [[{"role": "user", "content": p}] if isinstance(p, str) else p for p in prompts]
    texts = [
        tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)
        for c in conversations
    ]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)

    def answers() -> list[str]:
        if spare:
            spare.update()
        with torch.no_grad():
            out = model.generate(
                **batch,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        new = out[:, batch["input_ids"].shape[1] :]
        return [t.strip() for t in tokenizer.batch_decode(new, skip_special_tokens=True)]

    with model.disable_adapter():
        base_answers = answers()
    tuned_answers = answers()
    return [
        {"prompt": p, "base": b, "tuned": t}
        for p, b, t in zip(prompts, base_answers, tuned_answers, strict=True)
    ]
