"""Schema fuzzing: every documented route, against the gateway's own /openapi.json, engine up.

schemathesis generates requests from the document, valid ones and ones that break it, and
each answer is checked: no 5xx; status, content type, headers and body as documented; a
request that breaks the document refused; one that keeps it not refused as malformed (where
the document can say what is valid). The document is the contract outside clients code
against, so a mismatch fails here like a crash does.

Generation is kept cheap: `max_tokens` is capped at FUZZ_MAX_TOKENS in requests that would
generate, and every other generation request asks for the base model (a random name is
only ever a 404). `POST /v1/train/jobs` gets only bodies its model refuses: a valid one
would start a training job on the shared stack's two cores.

    FLYWHEEL_FUZZ_EXAMPLES=N (default 15) examples per operation and mode.
"""

from __future__ import annotations

import itertools
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, assume, given, settings
from pydantic import ValidationError
from schemathesis import GenerationMode
from schemathesis import checks as st
from schemathesis.errors import FailureGroup

from serve.protocol import TrainJobRequest

pytestmark = pytest.mark.integration

EXAMPLES = int(os.environ.get("FLYWHEEL_FUZZ_EXAMPLES", "15"))
FUZZ_MAX_TOKENS = 4
REQUEST_TIMEOUT_S = 120

CHECKS = [
    st.not_a_server_error,
    st.status_code_conformance,
    st.content_type_conformance,
    st.response_headers_conformance,
    st.response_schema_conformance,
    st.negative_data_rejection,
    st.positive_data_acceptance,
]
# Where the document cannot say what a valid request is, "valid data accepted" is not judged.
ACCEPTANCE_NOT_JUDGED = {
    "POST /v1/adapters": "a valid body names a folder; whether it holds an adapter is on disk",
    "POST /v1/feedback/import": "any bytes are a valid body; rows are checked once read",
}
# The OpenAI routes document what the gateway checks and relay every other field: the engine
# judges those (a 400 for `top_p: {}`, or for a prompt that tokenizes to nothing).
RELAYED = {"POST /v1/chat/completions", "POST /v1/completions"}
GENERATING = {
    "POST /v1/chat/completions",
    "POST /v1/completions",
    "POST /v1/arena/battles",
    "POST /v1/arena/battles/{battle_id}/turns",
}
ONLY_INVALID = {"POST /v1/train/jobs": TrainJobRequest}

# Import bodies are files: JSON Lines is text, Parquet bytes.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")
schemathesis.serializer.alias("application/vnd.apache.parquet", "application/octet-stream")


@dataclass
class Tally:
    operations: set[str] = field(default_factory=set)
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    server_errors: list[str] = field(default_factory=list)
    violations: dict[str, str] = field(default_factory=dict)  # (operation, failure) -> example


def cheap(case: schemathesis.Case, tokens_cap: int, turn: int) -> None:
    """Keep a generation request cheap without changing whether it is valid."""
    body = case.body
    if case.operation.label not in GENERATING or not isinstance(body, dict):
        return
    body.setdefault("max_tokens", FUZZ_MAX_TOKENS)  # else up to the context length
    for name in ("max_tokens", "max_completion_tokens"):
        value = body.get(name)
        # JSON has one number type: 100.0 is an integer too, and the gateway takes it as one
        integral = isinstance(value, float) and value.is_integer()
        valid = (isinstance(value, int) and not isinstance(value, bool)) or integral
        if valid and FUZZ_MAX_TOKENS < value <= tokens_cap:
            body[name] = FUZZ_MAX_TOKENS
    if "model" in body and isinstance(body["model"], str) and body["model"] and turn % 2:
        body["model"] = "base"


def fuzz_operation(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    base_url: str,
    tokens_cap: int,
    tally: Tally,
) -> None:
    label = operation.label
    refuses = ONLY_INVALID.get(label)
    excluded: list[Any] = []  # checks that do not apply to this operation
    if label in ACCEPTANCE_NOT_JUDGED:
        excluded.append(st.positive_data_acceptance)
    if label in RELAYED:
        excluded += [st.positive_data_acceptance, st.negative_data_rejection]
    turns = itertools.count()
    session = requests.Session()

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples every run: CI cannot fail on a new draw
        phases=[Phase.explicit, Phase.generate],  # no shrinking: failures are collected
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        if refuses is not None:
            try:
                refuses.model_validate(case.body)
                assume(False)  # valid: it would start real work
            except ValidationError:
                pass
        cheap(case, tokens_cap, next(turns))
        tally.requests += 1
        try:
            response = case.call(base_url=base_url, session=session, timeout=REQUEST_TIMEOUT_S)
        except requests.RequestException as exc:  # a hang or a dropped connection
            tally.server_errors.append(f"{label} -> {type(exc).__name__}: {case.as_curl_command()}")
            print(f"    {tally.server_errors[-1]}")
            return
        tally.statuses[response.status_code] += 1
        if response.status_code >= 500:
            tally.server_errors.append(
                f"{label} -> {response.status_code}: {response.text[:300]}\n"
                f"    {case.as_curl_command()}"
            )
            print(f"    {tally.server_errors[-1]}")
        try:
            case.validate_response(response, checks=CHECKS, excluded_checks=excluded)
        except FailureGroup as group:  # one entry per failed check
            for failure in group.exceptions:
                title = getattr(failure, "title", type(failure).__name__)
                tally.violations.setdefault(
                    f"{label} [{mode.value}]: {title}",
                    f"{getattr(failure, 'message', failure)}\n    {case.as_curl_command()}\n"
                    f"    -> {response.status_code} {response.text[:300]}",
                )

    run()
    tally.operations.add(label)


def can_break(operation: schemathesis.APIOperation) -> bool:
    """Is there an invalid request to make? Not without a body or parameters, and not with
    only free-text path segments (every segment is a string)."""
    if any(len(part) for part in (operation.query, operation.headers, operation.body)):
        return True
    types = [p.definition["schema"].get("type") for p in operation.path_parameters]
    return any(t != "string" for t in types)


def test_every_route_answers_as_its_openapi_document_says(stack, record_property):
    schema = schemathesis.openapi.from_url(f"{stack.url}/openapi.json")
    # A refusal of invalid data may also be a 413: a generated body can be over --max-body-mib.
    rejection = schema.config.checks.negative_data_rejection
    rejection.expected_statuses = [*rejection.expected_statuses, "413"]
    document = httpx.get(f"{stack.url}/openapi.json").json()
    chat = document["paths"]["/v1/chat/completions"]["post"]["requestBody"]
    tokens_cap = chat["content"]["application/json"]["schema"]["properties"]["max_tokens"][
        "maximum"
    ]
    tally = Tally()
    started = time.monotonic()
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            if mode is GenerationMode.POSITIVE and operation.label in ONLY_INVALID:
                continue
            if mode is GenerationMode.NEGATIVE and not can_break(operation):
                continue
            before = (time.monotonic(), tally.requests)
            fuzz_operation(operation, mode, stack.url, tokens_cap, tally)
            took = time.monotonic() - before[0]
            print(
                f"  {operation.label} [{mode.value}]: {tally.requests - before[1]} in {took:.1f} s"
            )
    seconds = time.monotonic() - started
    summary = (
        f"fuzzed {len(tally.operations)} operations, {tally.requests} requests in {seconds:.0f} s "
        f"({EXAMPLES} examples per operation and mode); "
        f"statuses {dict(sorted(tally.statuses.items()))}; "
        f"5xx: {len(tally.server_errors)}; schema violations: {len(tally.violations)}"
    )
    print(f"\n{summary}")
    for key in ("operations", "requests", "server_errors", "violations"):
        value = getattr(tally, key)
        record_property(f"fuzz_{key}", value if isinstance(value, int) else len(value))

    assert len(tally.operations) == len(document_operations(document))
    assert tally.requests > len(tally.operations)  # more than one request each, on average
    problems = tally.server_errors[:10] + [f"{k}\n{v}" for k, v in tally.violations.items()]
    assert not problems, "\n\n".join(problems)


def document_operations(document: dict[str, Any]) -> list[str]:
    methods = {"get", "post", "put", "patch", "delete"}
    return [
        f"{m.upper()} {p}" for p, item in document["paths"].items() for m in item if m in methods
    ]


def test_a_known_path_with_another_method_is_a_405_naming_the_allowed_ones(stack):
    """The catch-all for unknown /v1 paths must not turn a wrong method into a 404."""
    resp = httpx.put(f"{stack.api}/chat/completions", json={})
    assert resp.status_code == 405, resp.text
    assert resp.headers["Allow"] == "POST"
    assert resp.json()["error"]["code"] == "method_not_allowed"
    assert httpx.delete(f"{stack.api}/feedback/counts").headers.get("Allow") == "GET"
    unknown = httpx.put(f"{stack.api}/no-such-route")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"


def test_every_route_that_takes_a_body_refuses_deep_nesting_with_a_400(stack):
    """Hardening 13: each documented POST gets 100,000 nested brackets (the path's placeholders
    filled in); the answer is a 400, never a 5xx."""
    document = httpx.get(f"{stack.url}/openapi.json").json()
    posts = [path for path, ops in document["paths"].items() if "post" in ops]
    assert len(posts) >= 10
    for path in posts:
        url = stack.url + path.replace("{", "x").replace("}", "")
        resp = httpx.post(url, content=b"[" * 100_000, timeout=60)
        assert resp.status_code == 400, (path, resp.status_code, resp.text[:200])
        if path != "/v1/feedback/import":  # reads its own body, row by row: "row 1: ..."
            assert resp.json()["error"]["code"] == "too_deeply_nested", path
