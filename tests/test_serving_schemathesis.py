"""Property-based API testing with schemathesis against /openapi.json: no 5xx, conforming answers.

Valid and invalid requests are generated for every operation from the app's own OpenAPI
document and sent to the real app (tiny release) in-process. Bounded to a few dozen examples
per operation so the whole run takes seconds. The admin reload is left out: it only reloads
the same release, and its refusals are covered in test_serving_reload.py.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from serving.app import create_app
from tests.serving_fixtures import USER, settings_for

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def api(tiny_releases: Path) -> schemathesis.schemas.BaseSchema:
    app = create_app(settings_for(tiny_releases))
    with asgi.get_client(app) as client:  # starts the app's lifespan, kept for the run
        deadline = time.monotonic() + 120
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the model did not load"
            time.sleep(0.05)
    return schemathesis.openapi.from_asgi("/openapi.json", app)


def run_operation(operation: schemathesis.APIOperation, statuses: Counter[int]) -> None:
    """Send generated requests (valid and invalid) to one operation and check every answer."""

    @given(case=operation.as_strategy())
    @settings(
        max_examples=40,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=USER, checks=CHECKS)
        statuses[response.status_code] += 1

    check()


def test_generated_requests_get_conforming_answers(
    api: schemathesis.schemas.BaseSchema,
) -> None:
    # Looped here rather than with `@schema.parametrize()`: schemathesis' lazy fixture
    # loader fails on this pytest version ('Function' object has no attribute '_nodeid').
    seen: dict[str, Counter[int]] = {}
    for result in api.get_all_operations():
        operation = result.ok()
        if operation.path != "/v1/admin/reload":
            key = f"{operation.method.upper()} {operation.path}"
            run_operation(operation, seen.setdefault(key, Counter()))
    assert {"POST /v1/classify", "GET /v1/labels", "GET /healthz", "GET /metrics"} <= set(seen)
    classify = seen["POST /v1/classify"]
    assert classify[200] and (classify[422] or classify[400]), classify
