"""What a migration does with the directory (core.migration.directory_plan): a table of
cases, each a target's directory against the source's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from memex.core.identity import ApiKey, Project, Role, Tenant, User
from memex.core.migration import DirectoryContent, directory_check, directory_plan

T0 = datetime(2025, 1, 1, tzinfo=UTC)
ACME = Tenant("acme", T0, allow=("10.0.0.0/8",))
ALICE = User("acme", "alice", T0)
WEB = Project("acme", "web", T0)
KEY = ApiKey("k1", "acme", Role.ADMIN, "h1", T0, user="alice", project="web")
SOURCE = DirectoryContent((ACME,), (ALICE,), (WEB,), (KEY,))


def target(**changes: object) -> DirectoryContent:
    values: dict[str, object] = {"tenants": (ACME,), "users": (ALICE,), "projects": (WEB,)}
    values["keys"] = (KEY,)
    values.update(changes)
    return DirectoryContent(**values)  # type: ignore[arg-type]


CASES = {
    # name: (target, added, replaced (tenants, keys), skipped, differing, fixed, extra)
    "an empty target": (DirectoryContent(), 4, (0, 0), 0, (), (), ()),
    "a complete copy": (target(), 0, (0, 0), 4, (), (), ()),
    "half a copy (an interrupted run)": (target(keys=(), projects=()), 2, (0, 0), 2, (), (), ()),
    "a tenant's other allowlist": (
        target(tenants=(Tenant("acme", T0),)), 0, (1, 0), 3, ("tenant 'acme'",), (), (),
    ),
    "a tenant made at another time": (
        target(tenants=(Tenant("acme", T0 + timedelta(1), ACME.allow),)),
        0, (0, 0), 3, ("tenant 'acme'",), ("tenant 'acme'",), (),
    ),
    "a key revoked in the target": (
        target(keys=(KEY.with_changes(revoked_at=T0),)), 0, (0, 1), 3, ("key 'k1'",), (), (),
    ),
    "a key last used later in the target": (
        target(keys=(KEY.with_changes(last_used_at=T0),)), 0, (0, 1), 3, ("key 'k1'",), (), (),
    ),
    "a key of another tenant under the same id": (
        target(keys=(KEY.with_changes(tenant="globex", user=None, project=None),)),
        0, (0, 0), 3, ("key 'k1'",), ("key 'k1'",), (),
    ),
    "a user made at another time": (
        target(users=(User("acme", "alice", T0 + timedelta(1)),)),
        0, (0, 0), 3, ("user 'alice' of tenant 'acme'",), ("user 'alice' of tenant 'acme'",), (),
    ),
    "entries only the target holds": (
        target(
            tenants=(ACME, Tenant("globex", T0)),
            projects=(WEB, Project("globex", "web", T0)),
            keys=(KEY, ApiKey("k2", "globex", Role.OWNER, "h2", T0)),
        ),
        0, (0, 0), 4, (), (), ("tenant 'globex'", "project 'web' of tenant 'globex'", "key 'k2'"),
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_directory_plan(case: str) -> None:
    held, added, (tenants, keys), skipped, differing, fixed, extra = CASES[case]
    found = directory_plan(SOURCE, held)  # type: ignore[arg-type]
    add = found.add
    assert len(add.tenants) + len(add.users) + len(add.projects) + len(add.keys) == added
    assert (len(found.replace.tenants), len(found.replace.keys)) == (tenants, keys)
    assert found.skipped == skipped
    assert (found.differing, found.fixed, found.extra) == (differing, fixed, extra)
    check = directory_check(SOURCE, held)  # type: ignore[arg-type]
    assert check.missing == found.missing == added + len(differing)
    assert check.ok == (found.missing == 0)
    assert check.extra == len(extra)


def test_what_is_added_comes_in_an_order_the_directory_accepts() -> None:
    found = directory_plan(SOURCE, DirectoryContent())
    assert found.add == SOURCE  # tenants, then users and projects, then the keys naming them
    assert found.replace == DirectoryContent()
    assert directory_check(SOURCE, DirectoryContent()).problem() == (
        "4 of the source's 4 entries are not in the target"
    )
