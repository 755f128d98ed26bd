"""memex: persistent memory for AI agents and developer tools."""

from memex.bulk import BackupInfo
from memex.context import Context, ContextSection
from memex.core.models import KNOWN_KINDS, Hit, Memory, Page, Scope, Stats
from memex.core.ranking import FusionWeights
from memex.embedders.base import Embedder
from memex.errors import (
    ConfigError,
    ConflictError,
    EmbedderError,
    EmbedderMismatchError,
    ImportFormatError,
    MemexError,
    NotFoundError,
    OutputError,
    SchemaVersionError,
    ScopeError,
    StoreCorruptError,
    StoreError,
    StoreLockedError,
    ValidationError,
)
from memex.service import Memex
from memex.settings import Settings

__version__ = "0.1.0"

__all__ = [
    "KNOWN_KINDS",
    "BackupInfo",
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
    "NotFoundError",
    "OutputError",
    "Page",
    "SchemaVersionError",
    "Scope",
    "ScopeError",
    "Settings",
    "Stats",
    "StoreCorruptError",
    "StoreError",
    "StoreLockedError",
    "ValidationError",
    "__version__",
]
