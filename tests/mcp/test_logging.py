"""MCP logging: a client that sets a level (``logging/setLevel``, or the 2026 per-request
opt-in) is sent memex's warnings made during its calls, at that level or above, through
the SDK's own in-process client, on a real store whose soft quota a write reaches."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPDeprecationWarning
from mcp_types import LoggingLevel, LoggingMessageNotificationParams

from memex import Memex
from memex.interfaces.mcp import logs
from memex.interfaces.mcp.server import build_server, serve_handle
from memex.security.limits import LimitPolicy
from tests.mcp.conftest import data_of

pytestmark = pytest.mark.anyio

QUOTA_WARNING = "is at its soft memories quota: memories 1/1"


@pytest.fixture
def mx(tmp_path: Path) -> Iterator[Memex]:
    """A store whose first memory reaches its tenant's soft quota (a memex warning)."""
    with Memex.open(tmp_path / "memex.db") as handle:
        handle.set_quota(memories_soft=1)
        handle.server_limits(LimitPolicy(key=None, tenant=None, quotas=True))
        yield handle


async def remembered_logs(
    mx: Memex, level: LoggingLevel | None, mode: str = "legacy", private: bool = False
) -> list[LoggingMessageNotificationParams]:
    """The log messages a client that asks for ``level`` is sent while it remembers."""
    got: list[LoggingMessageNotificationParams] = []

    async def received(params: LoggingMessageNotificationParams) -> None:
        got.append(params)

    server = build_server(lambda _request, _action: mx, private=private)
    opt_in: dict[str, Any] = {"log_level": level} if mode != "legacy" else {}
    async with Client(server, mode=mode, logging_callback=received, **opt_in) as client:
        if level is not None and mode == "legacy":
            with pytest.warns(MCPDeprecationWarning):  # the client's side of SEP-2577
                assert (await client.set_logging_level(level)).model_dump(exclude_none=True) == {}
        data_of(await client.call_tool("remember", {"content": "The first fact"}))
        data_of(await client.call_tool("remember", {"content": "The second fact"}))
    return got


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("level", ["debug", "info", "warning"])
async def test_a_warning_during_a_call_reaches_a_client_at_its_level(
    mx: Memex, mode: str, level: LoggingLevel
) -> None:
    (sent,) = await remembered_logs(mx, level, mode)
    assert (sent.level, sent.logger) == ("warning", "memex.limits")
    assert sent.data == f"tenant default {QUOTA_WARNING}"


@pytest.mark.parametrize("mode", ["legacy", "auto"])
@pytest.mark.parametrize("level", [None, "error", "emergency"])
async def test_nothing_is_sent_below_the_level_or_without_one(
    mx: Memex, mode: str, level: LoggingLevel | None
) -> None:
    assert await remembered_logs(mx, level, mode) == []


async def test_the_server_declares_logging(mx: Memex) -> None:
    async with Client(serve_handle(mx), mode="legacy") as client:
        assert client.server_capabilities.logging is not None


async def test_a_shared_server_sends_the_callers_quota_warning_as_it_is(mx: Memex) -> None:
    (sent,) = await remembered_logs(mx, "warning", private=True)
    assert sent.data == f"tenant default {QUOTA_WARNING}"


@pytest.mark.parametrize(
    ("levelno", "level"),
    [
        (logging.DEBUG, "debug"),
        (logging.INFO, "info"),
        (logging.INFO + 5, "info"),
        (logging.WARNING, "warning"),
        (logging.ERROR, "error"),
        (logging.CRITICAL, "critical"),
        (logging.CRITICAL + 10, "critical"),
    ],
)
def test_logging_levels_map_to_mcp_levels(levelno: int, level: str) -> None:
    assert logs.mcp_level(levelno) == level


@pytest.mark.parametrize(
    ("level", "threshold", "sent"),
    [
        ("warning", "debug", True),
        ("warning", "warning", True),
        ("warning", "notice", True),
        ("warning", "error", False),
        ("critical", "error", True),
        ("info", "notice", False),
        ("emergency", "emergency", True),
    ],
)
def test_a_message_is_sent_at_or_above_the_threshold(
    level: LoggingLevel, threshold: LoggingLevel, sent: bool
) -> None:
    assert logs.at_least(level, threshold) is sent


@pytest.mark.parametrize(
    ("logger", "private", "text"),
    [
        ("memex.storage.sqlite.fulltext", False, "cannot save the index in /srv/x (full)"),
        ("memex.storage.sqlite.fulltext", True, logs.PRIVATE_TEXT),
        ("memex.http", True, logs.PRIVATE_TEXT),
        ("memex.limits", True, "cannot save the index in /srv/x (full)"),
    ],
)
def test_a_shared_server_sends_only_the_callers_own_warnings_as_they_are(
    logger: str, private: bool, text: str
) -> None:
    record = logging.LogRecord(
        logger, logging.WARNING, __file__, 1, "cannot save the index in %s\n (%s)",
        ("/srv/x", "full"), None,
    )  # fmt: skip
    assert logs.text_of(record, private) == text
