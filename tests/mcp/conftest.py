"""MCP tests: the server in process through the SDK's own client, and ``memex mcp`` and
``memex serve``'s ``/mcp`` as real processes reached through its stdio and streamable
HTTP clients."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def text_of(result: Any) -> str:
    """The one text block of a tool result."""
    assert len(result.content) == 1, result
    return str(result.content[0].text)


def data_of(result: Any) -> Any:
    """A successful tool result's JSON, checked against its structured copy."""
    assert not result.is_error, text_of(result)
    data = json.loads(text_of(result))
    assert data == result.structured_content
    return data


def error_of(result: Any) -> str:
    """A failed tool result's message: one line, no traceback."""
    assert result.is_error, text_of(result)
    message = text_of(result)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def environment(**extra: str) -> dict[str, str]:
    """The environment of a memex process started by a test: this tree, no warm process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MEMEX_WARM": "0", **extra}
    for name in ("MEMEX_API_KEY", "MEMEX_PROJECT", "MEMEX_USER", "MEMEX_AGENT"):
        if name not in extra:
            env.pop(name, None)
    return env
