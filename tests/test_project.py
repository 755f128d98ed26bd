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


def test_readme_example_runs(tmp_path: Path) -> None:
    import re

    readme = (PACKAGE.parent / "README.md").read_text()
    block = re.search(r"```python\n(.*?)```", readme, re.S)
    assert block is not None
    code = block.group(1).replace('"memory.db"', repr(str(tmp_path / "memory.db")))
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    from memex import Memex

    with Memex.open(tmp_path / "memory.db") as mx:
        now = mx.recall("where does Alice work?", k=1)[0].memory.content
        then = mx.recall("where does Alice work?", k=1, as_of="2024-06-01")[0].memory.content
    assert (now, then) == ("Alice works at Globex", "Alice works at Initech")
