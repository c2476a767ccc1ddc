"""A chat conversation as the page holds it, and the list saved in the browser to resume from.

The saved list lives in the rater's own browser (`gr.BrowserState`, localStorage): the gateway
keeps every exchange in its database already, this is only what the page needs to show them
again and go on.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import asdict, dataclass, field

from ui.safe_markdown import safe_markdown

MAX_SAVED = 50  # conversations kept in the browser, newest first
TITLE_CHARS = 48
_PENDING = threading.Lock()  # Stop and the cancelled stream both try to keep a cut answer


@dataclass
class Conversation:
    """The messages as sent to the model, and the completion id behind each assistant turn.

    An assistant turn the rater rewrote (an edit) has no completion id: it is not the model's.
    """

    id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    messages: list[dict] = field(default_factory=list)  # a system message first, if any
    ids: list[str | None] = field(default_factory=list)  # parallel to messages
    model: str | None = None
    updated: float = 0.0
    # Page-only state, never saved: a regenerated rival answer, and the answer streaming now.
    rival: tuple[str, str] | None = None  # (completion id, text)
    pending: tuple[object, str, str | None, str] | None = None  # run, answer|rival, id, text

    def add(self, role: str, content: str, completion_id: str | None = None) -> None:
        self.messages.append({"role": role, "content": content})
        self.ids.append(completion_id)

    def start(self, kind: str) -> object:
        """A new answer (kind: answer or rival) begins streaming; returns its run token."""
        run = object()
        with _PENDING:
            self.pending = (run, kind, None, "")
        return run

    def streaming(self, run: object, completion_id: str | None, text: str) -> bool:
        """Note what has arrived for `run` so far; False once Stop has cut that run."""
        with _PENDING:
            if self.pending is None or self.pending[0] is not run:
                return False
            self.pending = (run, self.pending[1], completion_id, text)
            return True

    def finished(self, run: object) -> bool:
        """The run ended by itself; False if Stop kept its answer first."""
        with _PENDING:
            if self.pending is None or self.pending[0] is not run:
                return False
            self.pending = None
            return True

    def keep_pending(self) -> None:
        """An answer cut short by Stop: keep what arrived (once, whoever gets here first)."""
        with _PENDING:
            pending, self.pending = self.pending, None
        if pending is None:
            return
        _, kind, completion_id, text = pending
        if kind == "answer":
            self.add("assistant", text, completion_id)
        elif completion_id:
            self.rival = (completion_id, text)

    @property
    def system(self) -> str:
        first = self.messages[0] if self.messages else None
        return first["content"] if first and first["role"] == "system" else ""

    @property
    def title(self) -> str:
        first = next((m["content"] for m in self.messages if m["role"] == "user"), "New chat")
        first = " ".join(first.split())
        return first if len(first) <= TITLE_CHARS else first[: TITLE_CHARS - 1] + "…"

    def shown(self) -> list[int]:
        """Indices into `messages` of what the chatbot shows (the system prompt is not)."""
        return [i for i, m in enumerate(self.messages) if m["role"] != "system"]

    def chatbot(self, streaming: str | None = None) -> list[dict]:
        """Messages for the Chatbot, HTML shown as text; `streaming`: an answer arriving."""
        shown = [
            {
                "role": self.messages[i]["role"],
                "content": safe_markdown(self.messages[i]["content"]),
            }
            for i in self.shown()
        ]
        if streaming is not None:
            shown.append({"role": "assistant", "content": safe_markdown(streaming)})
        return shown

    def last_answer(self) -> int | None:
        """Index of the last message if it is an answer."""
        if self.messages and self.messages[-1]["role"] == "assistant":
            return len(self.messages) - 1
        return None

    def to_dict(self) -> dict:
        saved = asdict(self)
        del saved["rival"], saved["pending"]
        return saved

    @classmethod
    def from_dict(cls, data: dict) -> Conversation:
        known = {"id", "messages", "ids", "model", "updated"}
        return cls(**{k: v for k, v in data.items() if k in known})


def save(saved: list[dict] | None, conv: Conversation) -> list[dict]:
    """`saved` with `conv` first (newest first); empty conversations are not kept."""
    others = [c for c in (saved or []) if c.get("id") != conv.id]
    if not conv.shown():
        return others
    conv.updated = time.time()
    return [conv.to_dict(), *others][:MAX_SAVED]


def choices(saved: list[dict] | None) -> list[tuple[str, str]]:
    """(title, id) pairs for the conversation list."""
    return [(Conversation.from_dict(c).title, c["id"]) for c in saved or [] if "id" in c]


def find(saved: list[dict] | None, conv_id: str | None) -> Conversation | None:
    for data in saved or []:
        if data.get("id") == conv_id:
            return Conversation.from_dict(data)
    return None
