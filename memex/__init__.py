"""memex: persistent memory for AI agents and developer tools.

The public names are imported on first use, so ``import memex`` (and the command
line, which starts on every hook an agent runs) costs only what it uses.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_HOMES = {
    "AsyncClient": "memex.client.aio",
    "BackupInfo": "memex.bulk",
    "Client": "memex.client.sync",
    "Context": "memex.core.assembled",
    "ContextSection": "memex.core.assembled",
    "KNOWN_KINDS": "memex.core.models",
    "Hit": "memex.core.models",
    "Memory": "memex.core.models",
    "Page": "memex.core.models",
    "Scope": "memex.core.models",
    "Stats": "memex.core.models",
    "FusionWeights": "memex.core.ranking",
    "Embedder": "memex.embedders.base",
    "Memex": "memex.service",
    "MigrationReport": "memex.core.migration",
    "QuotaReport": "memex.core.limits",
    "Settings": "memex.settings",
    **dict.fromkeys(
        (
            "AuthError",
            "AuthenticationError",
            "CallQuotaExceededError",
            "ConfigError",
            "ConflictError",
            "EmbedderError",
            "EmbedderMismatchError",
            "ImportFormatError",
            "MemexError",
            "NotFoundError",
            "OutputError",
            "PermissionDeniedError",
            "QuotaExceededError",
            "RateLimitError",
            "SchemaVersionError",
            "ScopeError",
            "StoreCorruptError",
            "StoreError",
            "StoreFullError",
            "StoreLockedError",
            "StoreReadOnlyError",
            "ValidationError",
        ),
        "memex.errors",
    ),
}

if TYPE_CHECKING:
    from memex.bulk import BackupInfo
    from memex.client.aio import AsyncClient
    from memex.client.sync import Client
    from memex.core.assembled import Context, ContextSection
    from memex.core.limits import QuotaReport
    from memex.core.migration import MigrationReport
    from memex.core.models import KNOWN_KINDS, Hit, Memory, Page, Scope, Stats
    from memex.core.ranking import FusionWeights
    from memex.embedders.base import Embedder
    from memex.errors import (
        AuthenticationError,
        AuthError,
        CallQuotaExceededError,
        ConfigError,
        ConflictError,
        EmbedderError,
        EmbedderMismatchError,
        ImportFormatError,
        MemexError,
        NotFoundError,
        OutputError,
        PermissionDeniedError,
        QuotaExceededError,
        RateLimitError,
        SchemaVersionError,
        ScopeError,
        StoreCorruptError,
        StoreError,
        StoreFullError,
        StoreLockedError,
        StoreReadOnlyError,
        ValidationError,
    )
    from memex.service import Memex
    from memex.settings import Settings


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'memex' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_HOMES})


__all__ = [
    "KNOWN_KINDS",
    "AsyncClient",
    "AuthError",
    "AuthenticationError",
    "BackupInfo",
    "CallQuotaExceededError",
    "Client",
    "ConfigError",
    "ConflictError",
    "Context",
    "ContextSection",
    "Embedder",
    "EmbedderError",
    "EmbedderMismatchError",
    "FusionWeights",
    "Hit",
    "ImportFormatError",
    "Memex",
    "MemexError",
    "Memory",
    "MigrationReport",
    "NotFoundError",
    "OutputError",
    "Page",
    "PermissionDeniedError",
    "QuotaExceededError",
    "QuotaReport",
    "RateLimitError",
    "SchemaVersionError",
    "Scope",
    "ScopeError",
    "Settings",
    "Stats",
    "StoreCorruptError",
    "StoreError",
    "StoreFullError",
    "StoreLockedError",
    "StoreReadOnlyError",
    "ValidationError",
    "__version__",
]
