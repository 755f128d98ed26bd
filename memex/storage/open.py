"""Choose a store backend from a URL or path."""

from __future__ import annotations

from pathlib import Path

from memex.core.locations import is_database_url, is_memex_url, not_a_store
from memex.core.progress import Progress
from memex.errors import ConfigError, StoreReadOnlyError
from memex.settings import DB_FILENAME, Settings
from memex.storage.base import Store


def resolve_path(location: str | Path) -> Path:
    """A store file path from ``sqlite:///path``, a file path or a directory."""
    text = str(location)
    if is_database_url(text):
        raise ConfigError("a PostgreSQL store is not a file")
    if is_memex_url(text):
        raise ConfigError(not_a_store(text))
    if "\x00" in text:  # no file system takes one; the OS call would fail with a bare ValueError
        raise ConfigError("a store path must not contain NUL characters")
    if text.startswith("sqlite:///"):  # as SQLAlchemy: sqlite:///rel.db, sqlite:////abs.db
        text = text[len("sqlite:///") :]
    elif "://" in text:
        scheme = text.split("://", 1)[0]
        raise ConfigError(
            f"unsupported store URL scheme {scheme!r}; use sqlite:///, postgresql:// or a path"
        )
    path = Path(text).expanduser()
    if path.is_dir() or text.endswith(("/", "\\")):
        path = path / DB_FILENAME
    return path


def open_store(location: str | Path, settings: Settings) -> Store:
    """Open (creating and upgrading if needed) the store at ``location``.

    With ``settings.read_only``, or when this process cannot write it, the store is
    opened read-only: never created, upgraded or written. A ``postgresql://`` URL opens
    a PostgreSQL store (the ``postgres`` extra).
    """
    if is_database_url(location):
        return _open_postgres(str(location), settings)
    from memex.storage.encryption import master_key_from
    from memex.storage.sqlite import SQLiteStore

    return SQLiteStore(
        resolve_path(location),
        busy_timeout=settings.busy_timeout,
        synchronous=settings.synchronous,
        ann_min_vectors=settings.ann_min_vectors,
        ann_probes=settings.ann_probes,
        lexical_index_min=settings.lexical_index_min,
        read_only=settings.read_only,
        master_key=master_key_from(settings),
        audit=settings.audit,
    )


def _open_postgres(url: str, settings: Settings) -> Store:
    try:
        import pgvector  # noqa: F401
        import psycopg  # noqa: F401
        import psycopg_pool  # noqa: F401
    except ImportError as exc:
        raise ConfigError(
            "a PostgreSQL store needs psycopg, psycopg-pool and pgvector: "
            "pip install 'memex[postgres]'"
        ) from exc
    from memex.storage.encryption import master_key_from
    from memex.storage.postgres import PostgresStore

    return PostgresStore(
        url,
        busy_timeout=settings.busy_timeout,
        ann_min_vectors=settings.ann_min_vectors,
        read_only=settings.read_only,
        master_key=master_key_from(settings),
        audit=settings.audit,
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
    memories it holds. A store holding memories is replaced only with ``force``.

    With ``settings.read_only``, or when this process cannot write the store, nothing is
    done: StoreReadOnlyError.
    """
    from memex.storage.sqlite.backup import restore

    if is_database_url(location):
        raise ConfigError(
            "restoring into a PostgreSQL store is not supported; copy the backup file "
            "into it with memex migrate BACKUP URL"
        )
    path = resolve_path(location)
    if settings.read_only:
        raise StoreReadOnlyError.refused(str(path), "opened read-only")
    return restore(
        path,
        Path(backup).expanduser(),
        busy_timeout=settings.busy_timeout,
        force=force,
        progress=progress,
    )
