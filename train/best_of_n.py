"""Synthetic DPO pairs, as in the iterative-DPO recipe: the current policy answers each prompt
n times, a reward model trained on people's comparisons scores the answers, and the best and
the worst become one more preference pair.

A few dozen human judgements teach a reward model what people prefer; best-of-n then turns
that into as many on-policy pairs as there are prompts, which is how few judgements go far.
Human pairs are always kept; synthetic ones only add to them.

A pair is kept only if the reward model calls its best answer good and its worst bad, on the
scale people's own pairs set: the threshold is midway between the mean scores of the chosen
and the rejected answers of human pairs (`calibrated_threshold`). Best against worst alone
also pairs two bad answers (measured on `brief`: 30 of 43 pairs, neither answer with the
trait), and such pairs teach whatever separates bad from worse, e.g. "even shorter".

The answers come first from the log: every answer people were shown by the policy (each
Regenerate, each answer they did not judge) is already an on-policy sample, so scoring those
costs no generation at all. Only prompts the log cannot cover are sampled anew, from the
serving engine itself (vLLM batches them), not from a second copy of the model.
"""

from __future__ import annotations

import asyncio
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

MIN_MARGIN = 0.5  # reward difference below which best and worst are too close to call
ANCHOR_PAIRS = 32  # human pairs scored to place the good/bad threshold (~10 s on 2 cores)


@dataclass(frozen=True)
class Candidates:
    prompt: list[dict[str, Any]]
    answers: list[str]


def pick_pair(
    candidates: Candidates,
    scores: list[float],
    min_margin: float = MIN_MARGIN,
    threshold: float | None = None,
) -> dict[str, Any] | None:
    """The highest- and lowest-scored different answers as a DPO row, or None if too close
    (or, with a `threshold`, unless the best scores at or above it and the worst below)."""
    ranked = sorted(zip(scores, candidates.answers, strict=True), key=lambda x: x[0])
    (low, worst), (high, best) = ranked[0], ranked[-1]
    if best.strip() == worst.strip() or high - low < min_margin:
        return None
    if threshold is not None and not low < threshold <= high:
        return None
    return {
        "prompt": candidates.prompt,
        "chosen": [{"role": "assistant", "content": best}],
        "rejected": [{"role": "assistant", "content": worst}],
    }


async def _sample(
    engine_url: str,
    model: str,
    prompts: list[list[dict[str, Any]]],
    n: int,
    max_tokens: int,
    temperature: float,
    concurrency: int = 16,
) -> list[Candidates]:
    limit = asyncio.Semaphore(concurrency)

    async def one(client: httpx.AsyncClient, prompt: list[dict[str, Any]]) -> Candidates:
        body = {
            "model": model,
            "messages": prompt,
            "n": n,
            "max_tokens": max_tokens,
            "temperature": temperature,
        }
        async with limit:
            resp = await client.post(f"{engine_url}/v1/chat/completions", json=body)
        resp.raise_for_status()
        return Candidates(prompt, [c["message"]["content"] or "" for c in resp.json()["choices"]])

    async with httpx.AsyncClient(timeout=600, headers=engine_headers()) as client:
        return list(await asyncio.gather(*(one(client, p) for p in prompts)))


def engine_headers() -> dict[str, str]:
    """The engine's API key, which the gateway hands its job in $FLYWHEEL_ENGINE_API_KEY."""
    key = os.environ.get("FLYWHEEL_ENGINE_API_KEY")
    return {"Authorization": f"Bearer {key}"} if key else {}


def synthetic_pairs(
    engine_url: str,
    policy: str,
    prompts: list[list[dict[str, Any]]],
    count: int,
    model_path: str,
    reward_path: str | Path,
    n: int = 4,
    max_tokens: int = 128,
    temperature: float = 1.0,
    min_margin: float = MIN_MARGIN,
    logged: list[Candidates] | None = None,
    anchors: list[dict[str, Any]] | None = None,
) -> tuple[list[dict[str, Any]], float | None]:
    """Up to `count` DPO rows: best vs worst of `n` answers of `policy` to each prompt.

    `logged` candidates (see `logged_candidates`) are used first; the rest of `count` is
    sampled, from prompts the log does not cover, in turn (more than once when `count` exceeds
    them; sampling differs each time). `policy` is the engine's model name: the base or an
    adapter version. With human DPO rows as `anchors`, only pairs across the threshold they
    calibrate are kept. Returns the rows and the threshold (None without anchors).
    """
    from train.reward import load_reward_model

    candidates = list(logged or [])[:count]
    covered = {_key(c.prompt) for c in candidates}
    fresh = [p for p in prompts if _key(p) not in covered] or prompts
    missing = count - len(candidates)
    if missing > 0 and fresh:
        chosen_prompts = [fresh[i % len(fresh)] for i in range(missing)]
        candidates += asyncio.run(
            _sample(engine_url, policy, chosen_prompts, n, max_tokens, temperature)
        )
    if not candidates:
        return [], None
    model, tokenizer = load_reward_model(model_path, reward_path)
    return scored_pairs(model, tokenizer, candidates, anchors or [], min_margin)


def scored_pairs(
    model, tokenizer, candidates: list[Candidates], anchors: list[dict[str, Any]], min_margin: float
) -> tuple[list[dict[str, Any]], float | None]:
    """The reward model scores every candidate answer (and the anchors' answers, to place the
    threshold); each prompt's best and worst become a row if `pick_pair` keeps them."""
    from train.evaluation import reward_scores

    anchors = anchors[:ANCHOR_PAIRS]
    conversations = [
        [*c.prompt, {"role": "assistant", "content": a}] for c in candidates for a in c.answers
    ]
    conversations += [[*r["prompt"], *r["chosen"]] for r in anchors]
    conversations += [[*r["prompt"], *r["rejected"]] for r in anchors]
    scores = reward_scores(model, tokenizer, conversations)
    threshold = None
    if anchors:
        anchor_scores = scores[len(scores) - 2 * len(anchors) :]
        threshold = calibrated_threshold(
            anchor_scores[: len(anchors)], anchor_scores[len(anchors) :]
        )
    rows, at = [], 0
    for c in candidates:
        row = pick_pair(c, scores[at : at + len(c.answers)], min_margin, threshold)
        at += len(c.answers)
        if row is not None:
            rows.append(row)
    return rows, threshold


def calibrated_threshold(chosen: list[float], rejected: list[float]) -> float:
    """Midway between what people chose and what they rejected, as the reward model scores them.

    A Bradley-Terry reward model's scores have no zero of their own: only people's pairs say
    where good ends and bad begins.
    """
    return (sum(chosen) / len(chosen) + sum(rejected) / len(rejected)) / 2


def _key(prompt: list[dict[str, Any]]) -> str:
    return json.dumps(prompt, sort_keys=True)


def _train_prompt(messages: str, eval_fraction: float) -> list[dict[str, Any]] | None:
    """The logged request's prompt if an answer may follow it and it is in the train split."""
    from feedback.exports import row_split
    from feedback.training_rows import canonical_prompt

    prompt = canonical_prompt(json.loads(messages))
    if not prompt or prompt[-1]["role"] != "user":
        return None
    if row_split("dpo", {"prompt": prompt}, eval_fraction) != "train":
        return None
    return prompt


def train_prompts(store, eval_fraction: float) -> list[list[dict[str, Any]]]:
    """Every distinct conversation prefix people asked, from the train split only."""
    prompts, seen = [], set()
    for row in store.query("select distinct messages from exchanges order by created_at"):
        prompt = _train_prompt(row["messages"], eval_fraction)
        if prompt is None or _key(prompt) in seen:
            continue
        seen.add(_key(prompt))
        prompts.append(prompt)
    return prompts


def logged_candidates(store, policy: str, eval_fraction: float, n: int) -> list[Candidates]:
    """Up to `n` different logged answers of `policy` per train prompt, where it gave two or more.

    Newest answers first: with a prompt asked again and again, the most recent sampling is
    the one closest to how the policy answers now.
    """
    answers: dict[str, Candidates] = {}
    rows = store.query(
        "select messages, completion from exchanges where engine_model = ? "
        "order by created_at desc",
        [policy],
    )
    for row in rows:
        text = (row["completion"] or "").strip()
        prompt = _train_prompt(row["messages"], eval_fraction) if text else None
        if prompt is None:
            continue
        found = answers.setdefault(_key(prompt), Candidates(prompt, []))
        if len(found.answers) < n and text not in (a.strip() for a in found.answers):
            found.answers.append(row["completion"])
    return [c for c in answers.values() if len(c.answers) >= 2]
