"""What a store location names: a file, a database server or a memex server. Pure.

A path or ``sqlite:///`` URL is a store file; ``postgresql://`` (or ``postgres://``)
is a database server that holds a store (``Memex.open`` opens either); ``http://`` or
``https://`` is a memex server (``memex serve``), which ``memex.Client`` talks to.
"""

from __future__ import annotations

from pathlib import Path

DATABASE_SCHEMES = ("postgresql://", "postgres://")
MEMEX_SCHEMES = ("http://", "https://")


def is_database_url(location: str | Path | None) -> bool:
    """Whether ``location`` names a store in a database server (PostgreSQL), not a file."""
    return isinstance(location, str) and location.startswith(DATABASE_SCHEMES)


def is_memex_url(location: str | Path | None) -> bool:
    """Whether ``location`` names a memex server, which a ``Client`` reaches over HTTP."""
    return isinstance(location, str) and location.strip().lower().startswith(MEMEX_SCHEMES)


def not_a_store(url: str) -> str:
    """Why a memex server's URL cannot be opened as a store, and what to use instead."""
    return (
        f"{url} is a memex server, not a store: connect with memex.Client({url!r}) "
        "(pip install 'memex[client]')"
    )
