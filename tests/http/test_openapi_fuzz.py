"""Every operation of the OpenAPI document, fuzzed by schemathesis: valid and invalid
input alike is answered without a server error, and every answer matches the document
(its status codes, content types, headers and body schemas)."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from asgi import Api, open_root
from hypothesis import HealthCheck, settings
from schemathesis import Case
from schemathesis.checks import missing_required_header, positive_data_acceptance

from memex.core.identity import Role
from memex.interfaces.http.app import create_app
from memex.security.keys import issue_key

HOME = "home"


# The keys the generated requests carry are made before the store that will hold them:
# schemathesis builds some of its cases while collecting, credentials included.
OWNER = issue_key(HOME, Role.OWNER, name="fuzzing owner")
READER = issue_key(HOME, Role.READ_ONLY, name="fuzzing reader")


class Served:
    """The app under test over a store holding the two keys, and its root handle."""

    def __init__(self, folder: Path) -> None:
        self.root = open_root(folder / "memex.db", HOME, tokenizer="heuristic")
        admin = self.root.admin
        admin.ensure_owner()
        for record, _ in (OWNER, READER):
            admin.directory.add_key(record)
        admin.create_user(HOME, "u1")
        admin.create_project(HOME, "p1")
        # Something to find: memories of the home tenant's own.
        self.root.remember_many(
            [
                {"content": "deploys happen on fridays", "kind": "fact", "tags": ["ops"]},
                {"content": "the database moved to a new host", "scope": {"user": "u1"}},
            ]
        )
        self.app = create_app(self.root)

    def reset(self) -> None:
        """Undo what would lock the next case out: an allowlist the fuzzer set."""
        self.root.admin.set_tenant_allow(HOME, [])


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    made = Served(tmp_path_factory.mktemp("fuzz"))
    yield made
    made.root.close()


def document() -> dict[str, Any]:
    """The OpenAPI document, read once at collection (it names every operation, one test
    each) from an app over a throwaway store."""
    with (
        tempfile.TemporaryDirectory(prefix="memex-openapi-") as folder,
        open_root(Path(folder) / "memex.db", HOME) as root,
    ):
        return create_app(root).openapi()


DOCUMENT = document()
# An import's body is text (JSON Lines): sent as generated, as text/plain bodies are.
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def with_key(secret: str) -> Any:
    """The document, its requests carrying ``secret`` as schemathesis applies credentials
    (so that it knows they carry them, and its checks' probes can take them away)."""
    loaded = schemathesis.openapi.from_dict(DOCUMENT)

    @loaded.auth(refresh_interval=None, retry_on=[])
    class Bearer:
        def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
            return secret

        def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}

    return loaded


as_owner = with_key(OWNER[1])
as_reader = with_key(READER[1])

FUZZ = settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)

EXCLUDED = [
    # memex checks values itself (lengths, ranges, names, formats) beyond the types the
    # document declares, so a schema-valid request may well be refused with a 422.
    positive_data_acceptance,
    # The key is checked in the worker trip that runs the route's call, after FastAPI
    # parsed the request: a request without a key but with a malformed query is told
    # about the query (422) first. Its answer depends on the request alone.
    missing_required_header,
]


def fuzz(case: Case, served: Served) -> None:
    """One generated request, checked by every other check schemathesis has."""
    # The document was read at collection, before this app existed: the checks' own
    # probes (a call without the key, another method) reach the app through the schema.
    case.operation.app = case.operation.schema.app = served.app
    try:
        case.call_and_validate(excluded_checks=EXCLUDED)
    finally:
        served.reset()


@pytest.mark.slow
@as_owner.parametrize()
@FUZZ
def test_owner(case: Case, served: Served) -> None:
    fuzz(case, served)


@pytest.mark.slow
@as_reader.parametrize()
@FUZZ
def test_reader(case: Case, served: Served) -> None:
    fuzz(case, served)


# -- what the fuzzing found, kept as plain cases -------------------------------------------


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/v1/memories", "GET, POST"),
        ("/v1/memories/batch", "POST"),  # a template matches it too, but it is no memory
        ("/v1/memories/0193a4b6-7c2e-7d1f-9a3b-5c6d7e8f9012", "DELETE, GET, PATCH"),
        ("/v1/keys/abc", "DELETE, GET, PATCH"),
    ],
)
def test_a_405_names_the_methods_of_the_resource_asked_for(
    served: Served, path: str, allowed: str
) -> None:
    api = Api(served.root)
    try:
        answer = api.request("OPTIONS", path, OWNER[1])
    finally:
        api.close()
    assert answer.status_code == 405
    assert answer.headers["allow"] == allowed


def test_an_empty_import_imports_nothing_as_the_document_allows(served: Served) -> None:
    assert DOCUMENT["paths"]["/v1/import"]["post"]["requestBody"]["required"] is False
    tenant = served.root.admin.create_tenant("empty")
    secret = served.root.admin.create_key(tenant.name, Role.OWNER).secret
    api = Api(served.root)
    try:
        exported = api.request("GET", "/v1/export", secret)
        assert (exported.status_code, exported.content) == (200, b"")
        for body in ({}, {"content": b"", "headers": {"content-type": "application/x-ndjson"}}):
            answer = api.request("POST", "/v1/import", secret, **body)
            assert answer.status_code == 201
            assert answer.json()["imported"] == 0
    finally:
        api.close()
