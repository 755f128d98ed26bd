"""The screenshots in docs/tui.md are what the current code draws (docs/screenshots.py)."""

from __future__ import annotations

import html
import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import textual

DOCS = Path(__file__).resolve().parents[2] / "docs"


def screenshots() -> ModuleType:
    spec = importlib.util.spec_from_file_location("screenshots", DOCS / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def plain(svg: str) -> str:
    """The text an SVG screenshot shows, its spans joined."""
    return html.unescape(re.sub(r"<[^>]+>", "", svg)).replace("\xa0", " ")


def test_the_committed_screenshots_match_the_code() -> None:
    module = screenshots()
    if textual.__version__ != module.TEXTUAL:
        pytest.skip(f"the SVGs were drawn with Textual {module.TEXTUAL}, not {textual.__version__}")
    drawn = module.render()
    assert set(drawn) == {"main", "search", "details", "delete", "export"}
    stale = [
        name
        for name, svg in drawn.items()
        if (DOCS / "screenshots" / f"{name}.svg").read_text(encoding="utf-8") != svg
    ]
    assert not stale, f"out of date (run python docs/screenshots.py): {stale}"
    assert "Delete this memory?" in plain(drawn["delete"])
    assert "kind: note → fact" in plain(drawn["details"])
    assert "+CI runs the test suite on every push; deploys happen on Thursdays." in plain(
        drawn["details"]
    )
    document = (DOCS / "tui.md").read_text(encoding="utf-8")
    assert all(f"screenshots/{name}.svg" in document for name in drawn)
