"""Domain errors of the feedback store; the gateway turns them into OpenAI-shaped responses."""


class FeedbackError(Exception):
    """Base class: the request was understood but cannot be stored as asked."""


class UnknownExchange(FeedbackError):
    """A judgement names a completion id that was never logged."""

    def __init__(self, completion_id: str):
        super().__init__(
            f"no exchange with completion id {completion_id!r}: "
            "use the `id` returned by /v1/chat/completions"
        )
        self.completion_id = completion_id


class InvalidJudgement(FeedbackError):
    """Well-formed JSON that makes no sense as a judgement (e.g. comparing different prompts)."""
