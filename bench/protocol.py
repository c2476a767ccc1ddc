"""The held-out protocol: which preferences may tune the loop's defaults, and which judge them.

Fixed on 2026-12-06, before any tuning under it, and independent of every seed: the split is
this list, not a draw. The four tuning preferences are the ones the loop's earlier defaults
were tuned on (`list-no-repeats`, `brief`, `exclaims`) and one content preference (`example`),
one of each kind; the eight held-out ones were in no earlier run. Rules (docs/protocol.md):

- A default (a training parameter, a gate threshold, a rater setting) may be changed only on
  evidence from the tuning preferences.
- The held-out preferences are run once per candidate recipe, with the default settings, and
  reported as they come: every preference, min and median. A held-out result never feeds back
  into a default; a recipe that misses on them is reported as a miss.
- The rater is the realistic one (`RATER`): regenerate-and-pick only, at most 4 answers read per
  judgement, no edits, no loop cutting, and no answer picked that visibly repeats itself. The
  noisy rater flips 15 % of its picks. A rater who edits is a separate benchmark row, never the
  headline.

Each preference shows its trait in 5-50 % of the default model's answers (bench/traits.py),
so a rater reading up to 4 answers can form pairs.

    python -m bench.loop --preference you              # one held-out preference, 2 rounds
    python -m bench.loop --preference you --noise 0.15 # the noisy rater
"""

from __future__ import annotations

TUNING = ("list-no-repeats", "brief", "exclaims", "example")
HELD_OUT = (
    "you",  # tone
    "no-hedging",  # tone
    "paragraphs",  # format
    "quote",  # format
    "short-sentences",  # length
    "source",  # content
    "figures",  # content
    "analogy",  # content
)

RATER = {"max_answers": 4, "edits": False, "noise": 0.0, "answer_tokens": 256, "picks_loops": False}
"""The realistic rater's settings, the benchmark's default: it reads 4 answers at most, each up
to `answer_tokens` (the Chat tab's default `max_tokens`; reading 128, it chose lists it never saw
end, and the model learnt lists that loop: docs/benchmarks.md), never edits, and never picks an
answer it saw repeat itself."""
NOISY_FLIP_SHARE = 0.15
"""The noisy rater's share of picks flipped (a person who misreads, or disagrees)."""


def split_of(preference: str) -> str:
    """ "tuning", "held-out", or "other" (a preference from before the protocol, e.g. `list`)."""
    if preference in TUNING:
        return "tuning"
    return "held-out" if preference in HELD_OUT else "other"
