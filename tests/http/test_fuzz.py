"""Generated requests for every operation of the OpenAPI document (schemathesis): no
answer is a server error, and every answer matches what the document declares."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memex import Memex
from memex.interfaces.http.app import create_app

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
"""Memex refuses more than the schema says (values are checked by memex itself), so a
refused schema-valid request is not a failure here."""


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    mx = Memex.open(tmp_path_factory.mktemp("fuzz") / "memex.db")
    mx.remember("a memory for generated requests to find", kind="fact")
    yield schemathesis.openapi.from_asgi("/openapi.json", create_app(mx, auth=False))
    mx.close()


def test_generated_requests_get_no_server_error_and_match_the_document(api_schema: Any) -> None:
    operations = [op.ok() for op in api_schema.get_all_operations()]
    assert len(operations) >= 30
    strategy = st.one_of([op.as_strategy() for op in operations if "import" not in op.path])

    @given(case=strategy)
    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        case.call_and_validate(checks=CHECKS)

    check()
