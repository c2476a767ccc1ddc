"""The closed-loop benchmark's own judgement: its rater's preferences, win rates and health checks.

A wrong check here would make bench/loop.py report a model as better or healthier than it is.
"""

from __future__ import annotations

import pytest

from bench.loop import fault_shares, healthy_share, misses, win_rate
from bench.loop_report import long_health
from bench.preferences import PREFERENCES
from bench.prompts import SUBJECTS, held_out_prompts, train_prompts
from bench.trait_health import health_by_trait
from train.answer_health import (
    before_the_loop,
    ends_cleanly,
    has_repeated_line,
    is_healthy,
    is_repetitive,
)

LIST = "Tips:\n- water it\n- give it sun\n1. prune in spring"
PROSE = "Water the plant and give it sun. Prune it in spring."


def test_each_preference_tells_its_trait_apart():
    assert PREFERENCES["list"].has_trait(LIST) and not PREFERENCES["list"].has_trait(PROSE)
    careful = PREFERENCES["list-no-repeats"]
    assert careful.has_trait(LIST) and not careful.has_trait(PROSE)
    assert not careful.has_trait("1. Smile\n2. Laugh\n3. smile")  # an item named twice
    assert not careful.has_trait("- a\n- b\n- " + "we run far and " * 4)  # a looping phrase
    assert PREFERENCES["list"].has_trait("1. Smile\n2. Laugh\n3. smile")
    assert not PREFERENCES["list"].has_trait("1. Friendship\n2. \n3. \n4. \n5. ")  # empty items
    assert PREFERENCES["brief"].has_trait(PROSE)
    assert not PREFERENCES["brief"].has_trait("word " * 60 + ".")
    assert not PREFERENCES["brief"].has_trait("Too short.")  # under 5 words
    assert not PREFERENCES["brief"].has_trait("Cut off in the middle of a")
    assert PREFERENCES["exclaims"].has_trait("What a fine day!")
    assert not PREFERENCES["exclaims"].has_trait(PROSE)


CUT_PROSE = "Bees make honey. They visit flowers. Each hive has a queen. A worker bee lives only a"


def test_an_edit_gives_an_answer_the_trait_with_the_smallest_change_a_person_would_make():
    exclaimed = PREFERENCES["exclaims"].edit(CUT_PROSE)
    assert exclaimed == CUT_PROSE.replace("honey.", "honey!")  # one character, nothing else
    short = PREFERENCES["brief"].edit(CUT_PROSE)
    assert short == "Bees make honey. They visit flowers. Each hive has a queen."  # tail dropped
    assert PREFERENCES["brief"].edit("word " * 60 + "end. More.") is None  # no short first part
    listed = PREFERENCES["list"].edit(CUT_PROSE)
    assert listed == "1. Bees make honey.\n2. They visit flowers.\n3. Each hive has a queen."
    assert PREFERENCES["list"].edit("One sentence. And two.") is None  # not three items
    twice = "Bees buzz. Bees buzz. Bees fly. Bees sting."
    assert PREFERENCES["list"].edit(twice).count("Bees buzz.") == 2
    assert (
        PREFERENCES["list-no-repeats"].edit(twice) == "1. Bees buzz.\n2. Bees fly.\n3. Bees sting."
    )
    long_prose = (
        "Honey bees make honey, which they store in wax combs. So do wasps. They visit many flowers"
        " every day; a hive can visit millions. Each hive has one queen. Drones do not sting."
        " Workers build the comb."
    )
    assert PREFERENCES["list"].edit(long_prose) == (
        "1. Honey bees make honey.\n2. So do wasps.\n3. They visit many flowers every day.\n"
        "4. Each hive has one queen."
    )  # main clauses (a short one kept whole), four points at most: a list that ends
    wordy = " ".join(
        f"Sentence {n} has twelve words and no break in its main clause." for n in range(6)
    )
    assert PREFERENCES["list"].edit(wordy).splitlines()[-1].startswith("3.")  # 40 words at most
    for name in ("list", "list-no-repeats", "brief", "exclaims"):  # the ones with a hand fix
        fixed = PREFERENCES[name].edit(CUT_PROSE)  # whatever it returns, its judge would pick it
        assert fixed is not None and PREFERENCES[name].judge(fixed, CUT_PROSE) == "a"
    assert PREFERENCES["exclaims"].edit("Is it? Yes 3.5 it is") is None  # no full stop to change


def test_an_answer_that_is_already_a_list_is_edited_by_its_content_not_its_numbers():
    listed = "Some facts:\n1. Bees make honey.\n2. Bees make honey.\n3. 3. Each hive has a queen."
    assert PREFERENCES["list-no-repeats"].edit(listed + "\n4. They sting.") == (
        "1. Bees make honey.\n2. Each hive has a queen.\n3. They sting."
    )  # no "1. 1." or "3. 2.": old numbers are no items, and the intro is no statement
    assert PREFERENCES["list-no-repeats"].edit(listed) is None  # two points said once: no fix
    assert PREFERENCES["exclaims"].edit(listed) == listed.replace("honey.", "honey!", 1)
    assert PREFERENCES["exclaims"].edit("1.\n2. It is late.") == "1.\n2. It is late!"


def test_a_looping_list_is_edited_by_deleting_its_loop_a_poem_by_numbering_its_lines():
    careful = PREFERENCES["list-no-repeats"]
    looping = "Tips:\n1. Sleep well.\n2. Eat well.\n3. Walk daily.\n4. Sleep well.\n5. Eat"
    assert careful.edit(looping) == "Tips:\n1. Sleep well.\n2. Eat well.\n3. Walk daily."
    long_list = "\n".join(f"{n}. Item number {n} is here." for n in range(1, 9)) + "\n1. Item"
    long_list += "\n" + "Item number one is here. " * 4  # a loop after eight items
    cut = careful.edit(long_list)
    assert long_list.startswith(cut) and cut.splitlines()[-1].startswith("4.")  # four at most
    stalled = "1. Sleep well.\n2. Sleep well.\n3. Walk daily.\n4. Read books."  # loops at item 2
    assert careful.edit(stalled) == "1. Sleep well.\n2. Walk daily.\n3. Read books."  # rewritten
    poem = "Green leaves drink light,\nRoots drink the rain,\nSugar made from air,\nand so"
    assert careful.edit(poem) == (
        "1. Green leaves drink light.\n2. Roots drink the rain.\n3. Sugar made from air."
    )  # its lines, the cut-off last one dropped


def test_votes_and_scores_follow_the_trait_ties_count_half():
    prefer_lists = PREFERENCES["list"]
    assert prefer_lists.judge(LIST, PROSE) == "a"
    assert prefer_lists.judge(PROSE, LIST) == "b"
    assert prefer_lists.judge(LIST, LIST) == "tie"
    assert prefer_lists.judge(PROSE, PROSE) == "both_bad"
    assert [
        prefer_lists.score(*pair) for pair in [(LIST, PROSE), (PROSE, LIST), (PROSE, PROSE)]
    ] == [
        1.0,
        0.0,
        0.5,
    ]


def test_win_rate_pairs_answer_k_of_each_model_on_the_same_prompt():
    tuned = [[{"text": LIST}, {"text": LIST}], [{"text": PROSE}, {"text": LIST}]]
    base = [[{"text": PROSE}, {"text": LIST}], [{"text": PROSE}, {"text": PROSE}]]
    # wins, tie, both-bad (half), win -> (1 + 0.5 + 0.5 + 1) / 4
    assert win_rate(PREFERENCES["list"], tuned, base) == 0.75
    assert win_rate(PREFERENCES["list"], base, base) == 0.5


def test_health_catches_empty_looping_and_cut_off_answers():
    assert is_healthy("A fine answer.", "stop")
    assert not is_healthy("   ", "stop")
    assert is_repetitive("the cat sat on " * 5)
    assert not is_repetitive("One two three four. Five six seven eight.")
    assert ends_cleanly("It stops mid", "stop")  # the model chose to stop
    assert not ends_cleanly("It was cut off mid", "length")
    assert ends_cleanly("It was cut off after a sentence.", "length")
    assert has_repeated_line("1. **Oxygen**\n2. Water\n3. **oxygen** ")  # numbers and case aside
    assert not has_repeated_line("1. Oxygen\n\n2. Water\n\n3. Oxygen and water")  # blanks too


def test_a_loop_is_cut_before_the_first_sentence_or_line_said_again():
    looping = "1. Bees buzz.\n2. Bees fly far.\n3. Bees make honey.\n4. Bees buzz.\n5. Bees"
    assert before_the_loop(looping) == "1. Bees buzz.\n2. Bees fly far.\n3. Bees make honey."
    sentence = "Bees are amazing! " + "Bees make honey for the hive. " * 4
    assert before_the_loop(sentence) == "Bees are amazing! Bees make honey for the hive."
    phrase = "The sun matters! It gives life, " + "it is the most vital part, " * 4
    assert before_the_loop(phrase) == "The sun matters!"  # the loop's sentence never ends
    assert before_the_loop("A fine answer. Nothing here loops.") is None
    assert before_the_loop("it is the way, " * 5) is None  # nothing to keep before the loop


def test_healthy_share_counts_answers_over_all_prompts_and_old_runs_show_no_long_check():
    answers = [
        [{"text": "A fine answer.", "finish_reason": "stop"}],
        [{"text": "cut off in the mid", "finish_reason": "length"},
         {"text": "", "finish_reason": "stop"}, {"text": "Done.", "finish_reason": "length"}],
    ]  # fmt: skip
    assert healthy_share(answers) == 0.5
    assert long_health({"healthy_long": 0.75}, {"healthy_long": 0.5}) == "75% / 50%"
    assert long_health({"healthy": 0.3}, {"healthy": 0.3, "healthy_long": 0.5}) == "—"


def test_prompts_are_many_distinct_and_held_out_by_subject():
    train, held_out = train_prompts(), held_out_prompts()
    assert len(train) + len(held_out) >= 200
    assert len(set(train)) == len(train) and len(set(held_out)) == len(held_out)

    def subjects(prompts: list[str]) -> set[str]:
        return {s for s in SUBJECTS for p in prompts if p.endswith((f" {s}?", f" {s}.", f"{s}?"))}

    assert subjects(train) and subjects(held_out)
    assert not subjects(train) & subjects(held_out)


def test_reward_model_auc_is_the_chance_that_the_trait_outscores_its_absence():
    from bench.reward_quality import auc

    assert auc([3.0, 4.0], [1.0, 2.0]) == 1.0  # every answer with the trait ranks above
    assert auc([1.0, 2.0], [3.0, 4.0]) == 0.0
    assert auc([1.0, 3.0], [2.0]) == 0.5
    assert auc([2.0], [2.0]) == 0.5  # a tie counts half


def _run(preference: str, rates: list[float], seed: int = 0, control: bool = False, long=None):
    rounds = [
        {"round": n, "held_out_win_rate": rate, "last_judgement_to_answer_s": 100.0 * n,
         "tuned": {} if long is None else {"healthy_long": long[n - 1]}}
        for n, rate in enumerate(rates, 1)
    ]  # fmt: skip
    base = {} if long is None else {"healthy_long": 0.5}
    return {"preference": preference, "control": control, "settings": {"seed": seed},
            "base": base, "rounds": rounds}  # fmt: skip


def test_repeats_keep_their_own_files_and_sum_up_as_min_and_median_per_round():
    from bench.loop_report import repeat_summary, result_path, run_name

    assert result_path("list", False, 0).name == "list.json"
    assert result_path("list", True, 0).name == "list-control.json"
    assert result_path("list", False, 2).name == "list-seed2.json"
    assert run_name(_run("list", [0.7], seed=2)) == "list seed 2"
    runs = [
        _run("list", [0.70, 0.90]),  # an old run, before the 512-token check
        _run("list", [0.80, 0.95], seed=1, long=[0.6, 0.45]),
        _run("list", [0.86, 0.91], seed=2, long=[0.55, 0.52]),
        _run("list", [0.10], control=True, long=[0.1]),  # a control is no repeat
    ]
    first, second = repeat_summary(runs)
    assert (first["round"], first["runs"], first["win_rate_min"]) == (1, 3, 0.70)
    editing = _run("list", [0.9], seed=3)
    editing["settings"]["edits"] = True  # a rater who also edits: its own kind, no repeat
    assert result_path("list", False, 3, edits=True).name == "list-edits-seed3.json"
    assert run_name(editing) == "list (edits) seed 3"
    noisy = _run("you", [0.8])
    noisy["settings"]["noise"] = 0.15  # the noisy rater: its own kind, no repeat either
    assert result_path("you", False, 0, noise=0.15).name == "you-noise15.json"
    assert run_name(noisy) == "you (noise 15%)"
    by_kind = {(row["preference"], row["round"]): row for row in repeat_summary([*runs, editing])}
    assert by_kind["list", 1]["runs"] == 3 and by_kind["list (edits)", 1]["runs"] == 1
    assert first["win_rate_median"] == 0.80
    assert second["win_rate_median"] == 0.91 and second["slowest_turnaround_s"] == 200.0
    assert round(second["worst_long_health_vs_base"], 2) == -0.05
    assert second["long_health_runs"] == 2


def test_the_protocol_summary_counts_each_preference_once_per_split_and_rater():
    from bench.loop_report import split_summary, win_rate_ceiling

    assert win_rate_ceiling(0.0) == 1.0 and win_rate_ceiling(0.48) == 0.76  # half the base ties
    runs = [
        _run("you", [0.70, 0.90], long=[0.40, 0.50]),  # base 0.5: round 1 is 10 points worse
        _run("quote", [0.80], long=[0.52]),
        _run("quote", [0.99], seed=1, long=[0.9]),  # a repeat: not the protocol's run
        _run("source", [0.50], control=True, long=[0.5]),  # a control neither
        _run("brief", [0.75], long=[0.6]),  # tuning
    ]
    noisy = _run("you", [0.60], long=[0.5])
    noisy["settings"]["noise"] = 0.15
    rows = {(r["split"], r["rater"], r["round"]): r for r in split_summary([*runs, noisy])}
    assert set(rows) == {
        ("held-out", "realistic", 1), ("held-out", "realistic", 2),
        ("held-out", "(noise 15%)", 1), ("tuning", "realistic", 1),
    }  # fmt: skip
    first = rows["held-out", "realistic", 1]
    assert first["preferences"] == ["quote", "you"]
    assert (first["win_rate_min"], first["win_rate_median"]) == (0.70, 0.75)
    assert (first["healthy_within_margin"], first["health_measured"]) == (1, 2)
    assert first["slowest_turnaround_s"] == 100.0
    assert rows["held-out", "realistic", 2]["preferences"] == ["you"]
    assert rows["held-out", "(noise 15%)", 1]["win_rate_median"] == 0.60


def test_the_collapse_check_names_each_fault_once_in_order_empty_repetitive_unfinished():
    looping = "the cat sat down " * 5
    answers = [
        [{"text": "  ", "finish_reason": "stop"}, {"text": looping, "finish_reason": "stop"}],
        [{"text": "It stops mid", "finish_reason": "length"},
         {"text": "A whole answer.", "finish_reason": "length"}],
    ]  # fmt: skip
    assert fault_shares(answers) == {"empty": 0.25, "repetitive": 0.25, "unfinished": 0.25}
    assert healthy_share(answers) == 0.25


def test_trait_health_splits_answers_by_the_trait_and_names_their_faults():
    looping_list = "1. run\n2. run fast\n3. " + "run far and fast " * 5
    answers = [
        {"text": LIST, "finish_reason": "stop"},
        {"text": looping_list, "finish_reason": "length"},
        {"text": PROSE, "finish_reason": "stop"},
    ]
    groups = health_by_trait(PREFERENCES["list"], answers)
    assert groups["with_trait"]["answers"] == 2
    assert groups["with_trait"]["healthy"] == 0.5
    assert groups["with_trait"]["faults"] == {"empty": 0.0, "repetitive": 0.5, "unfinished": 0.0}
    assert groups["without_trait"] == {
        "answers": 1,
        "healthy": 1.0,
        "faults": {"empty": 0.0, "repetitive": 0.0, "unfinished": 0.0},
    }
    nothing = health_by_trait(PREFERENCES["list"], [answers[2]])["with_trait"]
    assert nothing == {"answers": 0, "healthy": None, "faults": {}}
    assert all(p.ask for p in PREFERENCES.values())


def test_the_protocol_splits_twelve_preferences_of_every_kind_four_for_tuning():
    from bench.protocol import HELD_OUT, TUNING, split_of

    assert len(TUNING) == 4 and len(HELD_OUT) == 8 and not set(TUNING) & set(HELD_OUT)
    assert set(TUNING) | set(HELD_OUT) <= set(PREFERENCES)
    kinds = {"format", "length", "tone", "content"}
    assert {PREFERENCES[p].kind for p in TUNING} == kinds
    assert {PREFERENCES[p].kind for p in HELD_OUT} == kinds
    assert split_of("you") == "held-out" and split_of("brief") == "tuning"
    assert split_of("list") == "other"


@pytest.mark.parametrize(
    "name, with_trait, without",
    [
        ("example", "Fruit, such as apples, is sweet.", "Fruit is sweet."),
        ("you", "You will like it.", "It is nice."),
        ("no-hedging", "Bees make honey.", "Bees may make honey."),
        ("paragraphs", "One.\n\nTwo.\n\nThree.", "One.\nTwo.\nThree."),
        ("quote", 'He said "be kind" once.', "He said be kind."),
        ("short-sentences", "Cats purr. Dogs bark.", "Cats purr. " + "word " * 16 + "end."),
        ("source", "Studies show it helps.", "It helps."),
        ("figures", "Rome was founded in 753 BC.", "1. Rome is old.\n2. It is big."),
        ("analogy", "The heart is like a pump.", "The heart pumps blood."),
    ],
)
def test_each_new_preference_sees_its_trait(name, with_trait, without):
    preference = PREFERENCES[name]
    assert preference.has_trait(with_trait) and not preference.has_trait(without)
    assert preference.edit(without) is None  # no hand fix: the protocol's rater does not edit


def test_misses_show_the_first_rejected_answer_of_each_prompt_spread_over_the_prompts():
    exclaims = PREFERENCES["exclaims"]
    prompts = [f"p{i}" for i in range(20)]
    tuned = [[{"text": "Yes!"}, {"text": f"no {i}."}, {"text": "no again."}] for i in range(20)]
    tuned[0] = [{"text": "All good!"}]  # nothing rejected for this prompt
    shown = misses(exclaims, prompts, tuned, count=4)
    assert [m["prompt"] for m in shown] == ["p1", "p5", "p9", "p13"]
    assert shown[0]["tuned"] == "no 1."


def test_a_runs_settings_can_be_written_as_json():
    """Regression: `--results` (a Path) in the settings crashed the first protocol run as it
    wrote its round-1 figures."""
    import argparse
    import json
    from pathlib import Path

    from bench.loop import run_settings

    args = argparse.Namespace(preference="you", results=Path("/tmp/x"), plot=False, probe=False,
                              noise=0.15, seed=0)  # fmt: skip
    settings = run_settings(args)
    assert json.loads(json.dumps(settings)) == {"preference": "you", "noise": 0.15, "seed": 0}


def test_the_base_models_answers_are_sampled_once_and_then_read_from_the_cache(
    tmp_path, monkeypatch
):
    import asyncio

    from bench import loop

    sampled = []

    async def sample(engine_url, model, prompts, n, seed, max_tokens=128):
        sampled.append(model)
        return [[{"text": "Hi.", "finish_reason": "stop"}] * n for _ in prompts]

    async def health(engine_url, model, prompts):
        return {"healthy_long": 0.5, "long_faults": {}}

    monkeypatch.setattr(loop, "BASE_CACHE", tmp_path)
    monkeypatch.setattr(loop, "sample_answers", sample)
    monkeypatch.setattr(loop, "long_answer_health", health)
    stack = loop.RunningStack("http://gw", "http://engine", tmp_path)
    first = asyncio.run(loop.base_answers(stack, "base", ["Hi?"], 2, fresh=False))
    again = asyncio.run(loop.base_answers(stack, "base", ["Hi?"], 2, fresh=False))
    assert first == again and sampled == ["base"]  # the second came from the cache
    asyncio.run(loop.base_answers(stack, "base", ["Hi?", "Bye?"], 2, fresh=False))
    asyncio.run(loop.base_answers(stack, "base", ["Hi?"], 2, fresh=True))
    assert sampled == ["base"] * 3  # other prompts, or --fresh-base: sampled anew


def test_the_benchmark_samples_its_own_copy_of_the_candidate_the_gate_cannot_unload(monkeypatch):
    """Regression: the gate retired (and unloaded) no-hedging's round-2 candidate while the
    benchmark still sampled it, and the run died on a 404."""
    from types import SimpleNamespace

    import httpx

    from bench import loop

    stack = SimpleNamespace(url="http://gw", engine_url="http://engine", engine_headers={})
    rows = [{"engine_name": "loop@2", "path": "/data/adapters/sha256/abc", "status": "retired"}]
    monkeypatch.setattr(loop, "get", lambda _stack, path: rows)
    posted = []

    def post(url, json, headers, timeout, status=200, text="ok"):
        posted.append((url, json))
        return SimpleNamespace(status_code=status, text=text)

    monkeypatch.setattr(httpx, "post", post)
    name = loop.benchmark_copy(stack, "loop@2")
    assert name == "bench-loop-v2"
    loaded = {"lora_name": "bench-loop-v2", "lora_path": "/data/adapters/sha256/abc"}
    assert posted == [("http://engine/v1/load_lora_adapter", loaded)]
    loop.drop_benchmark_copy(stack, name, "loop@2")
    assert posted[-1] == ("http://engine/v1/unload_lora_adapter", {"lora_name": "bench-loop-v2"})

    refused = lambda url, json, headers, timeout: post(url, json, headers, timeout, 400, "no")  # noqa: E731
    monkeypatch.setattr(httpx, "post", refused)
    assert loop.benchmark_copy(stack, "loop@2") == "loop@2"  # as before: the candidate itself
    posted.clear()
    loop.drop_benchmark_copy(stack, "loop@2", "loop@2")
    assert posted == []  # the candidate itself is the gateway's to unload
