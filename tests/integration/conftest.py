"""Integration fixtures: the official OpenAI client pointed at the session's gateway."""

from __future__ import annotations

import openai
import pytest


@pytest.fixture(scope="module")
def client(stack) -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.api, api_key="local", max_retries=0)
