"""Best-of-n pair selection: best vs worst by reward, unless they are too close to call."""

from train.best_of_n import Candidates, pick_pair

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
