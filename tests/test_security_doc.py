"""docs/security.md's permission matrix is the one the code enforces."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from memex.core.identity import PERMISSIONS, Action, Principal, Role

DOC = Path(__file__).resolve().parent.parent / "docs" / "security.md"
HOME_OWNER = "owner of the home tenant"


def matrix() -> tuple[list[str], dict[Action, list[bool]]]:
    """The table's columns, and for each action its row of ✓ (True) and blanks."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| action |"))
    header = [cell.strip() for cell in lines[start].strip("|").split("|")]
    rows: dict[Action, list[bool]] = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == len(header), line
        name = re.match(r"`([a-z_]+)`", cells[0])
        assert name is not None, line
        assert all(cell in ("✓", "") for cell in cells[1:]), line
        rows[Action(name.group(1))] = [cell == "✓" for cell in cells[1:]]
    return header[1:], rows


def principal(column: str) -> Principal:
    if column == HOME_OWNER:
        return Principal("k", "home", Role.OWNER, home=True)
    return Principal("k", "acme", Role(column), home=False)


def test_the_matrix_names_every_role_and_action_once() -> None:
    columns, rows = matrix()
    assert columns == [role.value for role in Role] + [HOME_OWNER]
    assert sorted(rows) == sorted(Action)


@pytest.mark.parametrize("action", list(Action))
def test_each_row_is_what_the_code_allows(action: Action) -> None:
    columns, rows = matrix()
    for column, ticked in zip(columns, rows[action], strict=True):
        assert principal(column).allows(action) is ticked, (action.value, column)
        if column != HOME_OWNER:
            assert (action in PERMISSIONS[Role(column)]) is ticked, (action.value, column)


def test_a_key_bound_to_a_project_administers_nothing() -> None:
    text = DOC.read_text(encoding="utf-8")
    assert "A key bound to a project** takes only `read`, `write` and `purge`" in text
    for role in Role:
        bound = Principal("k", "home", role, project="web", home=True)
        allowed = {a for a in Action if bound.allows(a)}
        assert allowed == {Action.READ, Action.WRITE, Action.PURGE} & PERMISSIONS[role]
