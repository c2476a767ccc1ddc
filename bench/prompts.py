"""The closed-loop benchmark's prompts: 240 varied questions made here (no model hub).

Sixty subjects, each asked in four of twelve kinds of question (facts, explanations, tips,
poems, stories, pros and cons …). The split is by subject: every fifth subject is held out, so
no held-out prompt shares a subject with a prompt the rater judged or the loop trained on.
"""

from __future__ import annotations

SUBJECTS = [
    "photosynthesis", "volcanoes", "the moon", "coffee", "bicycles", "chess", "recycling",
    "honey bees", "the internet", "rainbows", "gardening", "sleep", "the ocean", "pizza",
    "electric cars", "friendship", "music", "dinosaurs", "exercise", "saving money", "clouds",
    "libraries", "trains", "vaccines", "robots", "the sun", "camping", "baking bread", "birds",
    "mountains", "running", "penguins", "solar panels", "ancient Rome", "cooking rice",
    "time management", "public speaking", "saving energy", "learning a language", "cats",
    "dogs", "the weather", "earthquakes", "maps", "elections", "paper", "drinking water", "tea",
    "stars", "rivers", "painting", "swimming", "forests", "computers", "the brain", "football",
    "spiders", "kites", "glass", "chocolate",
]  # fmt: skip

TEMPLATES = [
    "What is {}?",
    "Explain {} to a ten-year-old.",
    "Give me some tips about {}.",
    "Write a short poem about {}.",
    "What are the pros and cons of {}?",
    "How does {} work?",
    "Tell me a fun fact about {}.",
    "Why is {} important?",
    "Describe {} in a few sentences.",
    "What should a beginner know about {}?",
    "Write a very short story about {}.",
    "How can I learn more about {}?",
]
PER_SUBJECT = 4
HELD_OUT_EVERY = 5


def _prompts(held_out: bool) -> list[str]:
    out = []
    for i, subject in enumerate(SUBJECTS):
        if (i % HELD_OUT_EVERY == 0) != held_out:
            continue
        for k in range(PER_SUBJECT):
            template = TEMPLATES[(i + k * 3) % len(TEMPLATES)]
            out.append(template.format(subject))
    return out


def train_prompts() -> list[str]:
    """192 prompts the rater chats about and votes on (the loop may train on them)."""
    return _prompts(held_out=False)


def held_out_prompts() -> list[str]:
    """48 prompts on subjects nobody judged: the win rate against base is measured here."""
    return _prompts(held_out=True)
