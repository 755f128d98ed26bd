"""Ids are unique per tenant: only a handle on the whole tenant may choose them.

A handle scoped to a project (or user, agent, session) that could insert a chosen id
would learn from a refusal that the id exists elsewhere in its tenant.
"""

from __future__ import annotations

import json

import pytest

from memex import Memex, ValidationError
from memex.core.ids import new_id


@pytest.fixture
def secret(mx: Memex) -> str:
    return mx.scoped(project="web").remember("a memory of another project").id


@pytest.mark.parametrize("scope", [{"project": "mobile"}, {"user": "u1"}, {"session": "s1"}])
def test_a_narrow_handle_cannot_choose_ids(mx: Memex, secret: str, scope: dict[str, str]) -> None:
    narrow = mx.scoped(**scope)
    outcomes = []
    for candidate in (secret, new_id()):  # an id that exists elsewhere, and one that does not
        with pytest.raises(ValidationError) as info:
            narrow.remember_many([{"content": "probe", "id": candidate}])
        outcomes.append(str(info.value))
    assert outcomes[0] == outcomes[1]
    assert "whole tenant" in outcomes[0]
    assert mx.stats().memories == 1


def test_a_narrow_import_gives_new_ids_either_way(mx: Memex, secret: str) -> None:
    mobile = mx.scoped(project="mobile")
    unknown, outside = new_id(), new_id()
    file = [
        json.dumps({"id": secret, "content": "copy of the secret's id", "superseded_by": unknown}),
        json.dumps({"id": unknown, "content": "a record the first one links to"}),
        json.dumps({"id": new_id(), "content": "a record linking out", "superseded_by": outside}),
    ]
    first, second, third = mobile.import_lines(file)
    assert {first.id, second.id, third.id}.isdisjoint({secret, unknown})
    assert first.superseded_by == second.id  # the file's own link follows the new id
    assert third.superseded_by == outside  # a link out of the file is left as written
    assert mx.get(secret).content == "a memory of another project"
    assert all(m.scope.project == "mobile" for m in (first, second, third))


def test_a_narrow_import_keeps_past_versions_under_the_new_id(mx: Memex) -> None:
    record = {"id": new_id(), "content": "v2", "version": 2,
              "history": [{"version": 1, "content": "v1"}]}  # fmt: skip
    [memory] = mx.scoped(project="p").import_lines([json.dumps(record)])
    assert memory.id != record["id"]
    assert [(m.id, m.version, m.content) for m in mx.history(memory.id)] == [
        (memory.id, 1, "v1"),
        (memory.id, 2, "v2"),
    ]


def test_a_tenant_wide_handle_keeps_ids(mx: Memex, secret: str) -> None:
    chosen = new_id()
    [memory] = mx.import_lines([json.dumps({"id": chosen, "content": "kept"})])
    assert memory.id == chosen
    [other] = mx.scoped(tenant="t2").remember_many([{"id": new_id(), "content": "x"}])
    assert mx.scoped(tenant="t2").get(other.id).content == "x"
    with pytest.raises(ValidationError, match="already exists"):
        mx.import_lines([json.dumps({"id": secret, "content": "clash"})])


def test_a_file_holding_one_id_twice_is_refused_on_a_narrow_handle(mx: Memex) -> None:
    twice = new_id()
    lines = [json.dumps({"id": twice, "content": c}) for c in ("one", "two")]
    with pytest.raises(ValidationError, match="appears twice"):
        mx.scoped(project="p").import_lines(lines)
    assert mx.stats().memories == 0
