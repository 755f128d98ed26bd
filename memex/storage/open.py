"""Choose a store backend from a URL or path."""

from __future__ import annotations

from pathlib import Path

from memex.core.progress import Progress
from memex.errors import ConfigError
from memex.settings import DB_FILENAME, Settings
from memex.storage.base import Store


def resolve_path(location: str | Path) -> Path:
    """A store file path from ``sqlite:///path``, a file path or a directory."""
    text = str(location)
    if text.startswith("sqlite:///"):  # as SQLAlchemy: sqlite:///rel.db, sqlite:////abs.db
        text = text[len("sqlite:///") :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(f"unsupported store URL scheme {scheme!r}; use sqlite:/// or a path")
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", "\\")):
        path = path / DB_FILENAME
    return path


def open_store(location: str | Path, settings: Settings) -> Store:
    """Open (creating and upgrading if needed) the store at ``location``."""
    from memex.storage.sqlite import SQLiteStore

    return SQLiteStore(
        resolve_path(location),
        busy_timeout=settings.busy_timeout,
        synchronous=settings.synchronous,
        ann_min_vectors=settings.ann_min_vectors,
        ann_probes=settings.ann_probes,
        lexical_index_min=settings.lexical_index_min,
    )


def restore_store(
    location: str | Path,
    backup: str | Path,
    settings: Settings,
    *,
    force: bool = False,
    progress: Progress | None = None,
) -> int:
    """Replace the store at ``location`` by the backup file ``backup``; return how many
    memories it holds. A store holding memories is replaced only with ``force``."""
    from memex.storage.sqlite.backup import restore

    return restore(
        resolve_path(location),
        Path(backup).expanduser(),
        busy_timeout=settings.busy_timeout,
        force=force,
        progress=progress,
    )
