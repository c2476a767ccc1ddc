"""The feedback store: every exchange and every human judgement, in one SQLite file."""

from feedback.api_keys import ApiKeys
from feedback.errors import FeedbackError, InvalidJudgement, UnknownExchange
from feedback.store import Exchange, Store

__all__ = ["ApiKeys", "Exchange", "FeedbackError", "InvalidJudgement", "Store", "UnknownExchange"]
