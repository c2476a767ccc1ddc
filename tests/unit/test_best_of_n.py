"""Best-of-n pair selection: best vs worst by reward, unless they are too close to call."""

from train.best_of_n import Candidates, calibrated_threshold, pick_pair

PROMPT = [{"role": "user", "content": "Hi"}]


def test_best_and_worst_become_chosen_and_rejected():
    candidates = Candidates(PROMPT, ["meh", "great", "bad", "fine"])
    row = pick_pair(candidates, [0.1, 2.0, -1.5, 0.7])
    assert row == {
        "prompt": PROMPT,
        "chosen": [{"role": "assistant", "content": "great"}],
        "rejected": [{"role": "assistant", "content": "bad"}],
    }


def test_too_close_or_identical_answers_make_no_pair():
    assert pick_pair(Candidates(PROMPT, ["a", "b"]), [0.2, 0.3], min_margin=0.5) is None
    assert pick_pair(Candidates(PROMPT, ["same", "same "]), [0.0, 3.0]) is None
    assert pick_pair(Candidates(PROMPT, ["a", "b"]), [0.0, 3.0], min_margin=0.5) is not None


def test_a_threshold_keeps_only_a_good_answer_against_a_bad_one():
    both_bad = Candidates(PROMPT, ["bad", "worse"])
    assert pick_pair(both_bad, [-0.5, -2.0]) is not None  # best vs worst alone pairs them
    assert pick_pair(both_bad, [-0.5, -2.0], threshold=0.0) is None
    assert pick_pair(Candidates(PROMPT, ["ok", "good"]), [0.5, 2.0], threshold=0.0) is None
    row = pick_pair(Candidates(PROMPT, ["bad", "good"]), [-1.0, 0.0], threshold=0.0)
    assert row is not None and row["chosen"][0]["content"] == "good"


def test_the_threshold_lies_midway_between_chosen_and_rejected_scores():
    assert calibrated_threshold([1.0, 2.0, 3.0], [-1.0, -3.0]) == 0.0
    assert calibrated_threshold([0.5], [0.5]) == 0.5


def _log(store, engine_model: str, question: str, answers: list[str]) -> None:
    from feedback.store import Exchange

    messages = [{"role": "user", "content": question}]
    store.log_exchanges(
        Exchange(f"chatcmpl-{engine_model}-{question}-{i}", "live", engine_model, messages, text)
        for i, text in enumerate(answers)
    )


def test_logged_answers_of_the_policy_become_candidates_per_train_prompt():
    from feedback import Store
    from train.best_of_n import logged_candidates

    store = Store(None)
    _log(store, "base", "Name a fruit.", ["Apple.", "Pear.", "Apple. ", "Plum.", "Fig.", "Kiwi."])
    _log(store, "base", "Name a tree.", ["Oak."])  # one answer: nothing to compare
    _log(store, "loop@1", "Name a tree.", ["Elm.", "Ash."])  # another policy's answers
    _log(store, "base", "Name a bird.", ["", "Crow."])  # an empty answer is no candidate

    found = logged_candidates(store, "base", eval_fraction=0.0, n=4)
    assert [c.prompt for c in found] == [[{"role": "user", "content": "Name a fruit."}]]
    answers = found[0].answers
    assert len(answers) == 4 and len({a.strip() for a in answers}) == 4  # distinct, at most n
    assert {a.strip() for a in answers} <= {"Apple.", "Pear.", "Plum.", "Fig.", "Kiwi."}
    assert [sorted(c.answers) for c in logged_candidates(store, "loop@1", 0.0, 4)] == [
        ["Ash.", "Elm."]
    ]


def test_logged_answers_of_held_out_prompts_are_never_candidates():
    from feedback import Store
    from feedback.exports import row_split
    from train.best_of_n import logged_candidates

    store = Store(None)
    questions = [f"Question {i}?" for i in range(40)]
    for q in questions:
        _log(store, "base", q, ["One.", "Two."])
    found = {c.prompt[0]["content"] for c in logged_candidates(store, "base", 0.25, 4)}
    held_out = {
        q for q in questions
        if row_split("dpo", {"prompt": [{"role": "user", "content": q}]}, 0.25) == "eval"
    }  # fmt: skip
    assert held_out and found and not found & held_out
    assert found | held_out == set(questions)
