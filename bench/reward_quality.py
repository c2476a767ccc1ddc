"""Can a reward model trained on a round's judgements pick best-of-n pairs? Checked against the
rater's hidden preference.

Best-of-n pairs are only as good as the reward model that picks them. This trains one on the
judgements a `bench/ablate.py` data folder keeps (a round's worth), then asks two questions the
hidden preference can answer exactly:

- how well its scores rank the held-out base answers by the trait (AUC: 0.5 is chance, 1.0
  puts every answer with the trait above every answer without it);
- of the pairs best-of-n would make from the logged answers (the loop's own rule: best and
  worst of 4, across the good/bad threshold), how many have the trait on the chosen side only
  (correct), on the rejected side only (reversed), or on both or neither (uninformative: they
  teach whatever else the reward model picked up).

    python -m bench.reward_quality --preference exclaims --data-dir /tmp/abl-exclaims \\
        --try "epochs=1" --try "epochs=1 learning_rate=2e-3"

No stack is needed: it reads the kept database and the ablation's cached base answers.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.preferences import PREFERENCES, Preference
from bench.prompts import held_out_prompts
from common.default_model import default_model_dir
from feedback.exports import DEFAULT_EVAL_FRACTION, export_rows, row_split
from feedback.store import Store
from train import best_of_n, reward
from train.evaluation import reward_scores
from train.loop import params_for, parse_params
from train.methods import load_params


def auc(positives: list[float], negatives: list[float]) -> float:
    """The chance that an answer with the trait outscores one without it (ties half)."""
    wins = sum((p > n) + 0.5 * (p == n) for p in positives for n in negatives)
    return wins / (len(positives) * len(negatives))


def trait_auc(model, tokenizer, preference: Preference, base_answers: list) -> float:
    conversations, labels = [], []
    for prompt, answers in zip(held_out_prompts(), base_answers, strict=True):
        for answer in answers:
            conversations.append(
                [
                    {"role": "user", "content": prompt},
                    {"role": "assistant", "content": answer["text"]},
                ]
            )
            labels.append(preference.has_trait(answer["text"]))
    scores = reward_scores(model, tokenizer, conversations)
    return auc(
        [s for s, trait in zip(scores, labels, strict=True) if trait],
        [s for s, trait in zip(scores, labels, strict=True) if not trait],
    )


def pair_quality(
    model, tokenizer, preference: Preference, store: Store, anchors: list, count: int
) -> dict[str, int]:
    """The best-of-n pairs the loop would make from the log, judged by the hidden preference."""
    sql = "select engine_model from exchanges group by 1 order by count(*) desc limit 1"
    [policy] = [r["engine_model"] for r in store.query(sql)]  # the base: the rater's chats
    candidates = best_of_n.logged_candidates(store, policy, DEFAULT_EVAL_FRACTION, 4)[:count]
    rows, _ = best_of_n.scored_pairs(model, tokenizer, candidates, anchors, best_of_n.MIN_MARGIN)
    tally = {"pairs": len(rows), "correct": 0, "reversed": 0, "uninformative": 0}
    for row in rows:
        chosen = preference.has_trait(row["chosen"][0]["content"])
        rejected = preference.has_trait(row["rejected"][0]["content"])
        kind = (
            "correct" if chosen > rejected else "reversed" if rejected > chosen else "uninformative"
        )
        tally[kind] += 1
    tally["possible"] = sum(  # prompts whose answers differ in the trait: a correct pair exists
        len({preference.has_trait(a) for a in c.answers}) == 2 for c in candidates
    )
    return tally


def measure(args: argparse.Namespace, setting: str) -> dict[str, Any]:
    preference = PREFERENCES[args.preference]
    store = Store(args.data_dir / "flywheel.db")
    rows = export_rows(store, "reward", split="all").rows
    train_rows = [r for r in rows if row_split("reward", r) == "train"]
    eval_rows = [r for r in rows if row_split("reward", r) == "eval"]
    params = params_for("reward", parse_params(setting.split("#")[0].split()))
    model_path = str(args.model or default_model_dir())
    with tempfile.TemporaryDirectory() as out:
        started = time.perf_counter()
        reward.train(
            model_path, train_rows, eval_rows, Path(out), load_params("reward", None, params)
        )
        seconds = time.perf_counter() - started
        model, tokenizer = reward.load_reward_model(model_path, out)
    base_answers = json.loads((args.data_dir / f"base-answers-x{args.samples}.json").read_text())
    return {
        "setting": setting,
        "params": params,
        "train_rows": len(train_rows),
        "train_s": round(seconds, 1),
        "trait_auc": round(trait_auc(model, tokenizer, preference, base_answers), 3),
        "best_of_n": pair_quality(model, tokenizer, preference, store, train_rows, args.pairs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preference", choices=list(PREFERENCES), required=True)
    parser.add_argument("--data-dir", type=Path, required=True, help="a bench/ablate.py folder")
    parser.add_argument("--try", dest="try_", action="append", default=[], metavar="'K=V K=V'",
                        help="reward-job parameters (repeatable; default: the loop's)")  # fmt: skip
    parser.add_argument("--pairs", type=int, default=48, help="best-of-n pairs asked for")
    parser.add_argument("--samples", type=int, default=4, help="base answers per held-out prompt")
    parser.add_argument("--model", type=Path, help="base model folder (default: the default)")
    args = parser.parse_args()
    for setting in args.try_ or [""]:
        result = measure(args, setting)
        pairs = result["best_of_n"]
        print(
            f"{setting or 'loop defaults'}: AUC {result['trait_auc']:.2f}; best-of-n pairs "
            f"{pairs['pairs']}: {pairs['correct']} correct, {pairs['reversed']} reversed, "
            f"{pairs['uninformative']} uninformative ({pairs['possible']} prompts could give a "
            f"correct pair); trained in {result['train_s']:.0f} s",
            flush=True,
        )
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
