"""Project-level guards: the public API list, module sizes and the README example.

The layering of the package (imports point down, no circles, a pure core, interfaces
that only call Memex) is checked by import-linter: the contracts are in pyproject.toml
and ``make lint`` runs them."""

from __future__ import annotations

from pathlib import Path

import memex

PACKAGE = Path(memex.__file__).parent


def test_public_api_is_sorted_and_importable() -> None:
    def isort_style(name: str) -> tuple[int, str]:  # constants, then classes, then the rest
        return (0 if name.isupper() else 1 if name[0].isupper() else 2, name)

    assert memex.__all__ == sorted(memex.__all__, key=isort_style)
    for name in memex.__all__:
        assert hasattr(memex, name), name
    # The lazy table and __all__ (which type checkers read) name the same things.
    assert set(memex.__all__) == {*memex._HOMES, "__version__"}


LINE_LIMIT = 500


def test_modules_stay_small() -> None:
    for path in PACKAGE.rglob("*.py"):
        name = path.relative_to(PACKAGE).as_posix()
        lines = len(path.read_text().splitlines())
        assert lines < LINE_LIMIT, (name, lines)


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


def test_the_command_lines_choices_match_their_sources() -> None:
    """The parser keeps its own copies (importing the sources would slow every start)."""
    from memex.core.context import STRATEGIES
    from memex.embedders.open import EMBEDDERS
    from memex.interfaces.cli import parser

    assert sorted(parser.EMBEDDERS) == sorted(EMBEDDERS)
    assert sorted(parser.STRATEGIES) == sorted(STRATEGIES)
