"""Which embedding model a PostgreSQL store's vectors come from, kept in ``memex_meta``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memex.errors import EmbedderError
from memex.storage.base import StoredVectors

if TYPE_CHECKING:
    import psycopg

    Conn = psycopg.Connection[Any]

_MODEL_KEY = "vectors_model"
_DIMS_KEY = "vectors_dimensions"


def _meta(conn: Conn, key: str) -> str | None:
    row = conn.execute("SELECT value FROM memex_meta WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row[0])


def stored_model(conn: Conn) -> StoredVectors | None:
    """The model of the stored vectors; None for a store with no vectors yet."""
    found = dict(
        conn.execute(
            "SELECT key, value FROM memex_meta WHERE key IN (%s, %s)", (_MODEL_KEY, _DIMS_KEY)
        ).fetchall()
    )
    model, dims = found.get(_MODEL_KEY), found.get(_DIMS_KEY)
    return None if model is None or dims is None else StoredVectors(str(model), int(dims))


def model_and_size(conn: Conn) -> tuple[StoredVectors | None, int]:
    """The stored model, and roughly how many memories the whole store holds: the highest
    key handed out (no tenant's rows are read)."""
    model = stored_model(conn)
    row = conn.execute(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM memories_seq"
    ).fetchone()
    return model, int(row[0]) if row else 0


def set_model(conn: Conn, model: StoredVectors) -> None:
    """Record ``model`` as the model of the stored vectors."""
    conn.execute(
        "INSERT INTO memex_meta (key, value) VALUES (%s, %s), (%s, %s) "
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        (_MODEL_KEY, model.model, _DIMS_KEY, str(model.dimensions)),
    )


def claim_model(conn: Conn, model: StoredVectors) -> None:
    """Record ``model`` for a store with no vectors yet; refuse vectors of another model."""
    stored = _meta(conn, _MODEL_KEY)
    if stored is None:
        conn.execute(
            "INSERT INTO memex_meta (key, value) VALUES (%s, %s), (%s, %s) "
            "ON CONFLICT (key) DO NOTHING",
            (_MODEL_KEY, model.model, _DIMS_KEY, str(model.dimensions)),
        )
        stored = _meta(conn, _MODEL_KEY)
    if stored != model.model:
        raise EmbedderError(f"store holds vectors of {stored}, not {model.model}")
