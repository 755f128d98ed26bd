"""Which embedding model a SQLite store's vectors come from, kept in its ``meta`` table."""

from __future__ import annotations

import sqlite3

from memex.errors import EmbedderError
from memex.storage.base import StoredVectors

_MODEL_KEY = "vectors_model"
_DIMS_KEY = "vectors_dimensions"


def _meta(conn: sqlite3.Connection, key: str) -> str | None:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    return None if row is None else str(row[0])


def _set_meta(conn: sqlite3.Connection, key: str, value: str) -> None:
    conn.execute(
        "INSERT INTO meta (key, value) VALUES (?, ?) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (key, value),
    )


def stored_model(conn: sqlite3.Connection) -> StoredVectors | None:
    """The model of the stored vectors; None for a store with no vectors yet."""
    model, dims = _meta(conn, _MODEL_KEY), _meta(conn, _DIMS_KEY)
    return None if model is None or dims is None else StoredVectors(model, int(dims))


def model_and_size(conn: sqlite3.Connection) -> tuple[StoredVectors | None, int]:
    """The model of the stored vectors, and the highest memory key (roughly how many
    memories the store holds), in one statement."""
    model, dims, top = conn.execute(
        "SELECT (SELECT value FROM meta WHERE key = ?), (SELECT value FROM meta WHERE key = ?), "
        "(SELECT max(seq) FROM memories)",
        (_MODEL_KEY, _DIMS_KEY),
    ).fetchone()
    vectors = None if model is None or dims is None else StoredVectors(str(model), int(dims))
    return vectors, int(top or 0)


def set_model(conn: sqlite3.Connection, model: StoredVectors) -> None:
    """Record ``model`` as the model of the stored vectors (a reindex swapped them)."""
    _set_meta(conn, _MODEL_KEY, model.model)
    _set_meta(conn, _DIMS_KEY, str(model.dimensions))


def claim_model(conn: sqlite3.Connection, model: StoredVectors) -> None:
    """Record ``model`` for a store with no vectors yet; refuse vectors of another model."""
    stored = _meta(conn, _MODEL_KEY)
    if stored is None:
        set_model(conn, model)
    elif stored != model.model:
        raise EmbedderError(f"store holds vectors of {stored}, not {model.model}")
