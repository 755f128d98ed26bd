"""The embedded SQLite backend."""

from memex.storage.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
