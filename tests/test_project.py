"""Project-level guards: the public API list and the layering of the package."""

from __future__ import annotations

import ast
from pathlib import Path

import memex

PACKAGE = Path(memex.__file__).parent


def test_public_api_is_sorted_and_importable() -> None:
    def isort_style(name: str) -> tuple[int, str]:  # constants, then classes, then the rest
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert memex.__all__ == sorted(memex.__all__, key=isort_style)
    for name in memex.__all__:
        assert hasattr(memex, name), name


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def test_core_is_pure_and_imports_point_down() -> None:
    for path in (PACKAGE / "core").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(
                ("memex.storage", "memex.service", "memex.interfaces", "memex.embedders", "sqlite3")
            ), f"{path.name} imports {module}"
    for path in (PACKAGE / "storage").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(("memex.service", "memex.interfaces")), path.name


def test_interfaces_do_no_storage_work() -> None:
    for path in (PACKAGE / "interfaces").rglob("*.py"):
        for module in _imports(path):
            assert not module.startswith(("memex.storage", "sqlite3")), f"{path.name}: {module}"


def test_modules_stay_small() -> None:
    for path in PACKAGE.rglob("*.py"):
        assert len(path.read_text().splitlines()) < 600, path
