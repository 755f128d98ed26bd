"""Which embedding model a PostgreSQL store's vectors come from, kept in ``memex_meta``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from memex.errors import EmbedderError
from memex.storage.base import StoredVectors

if TYPE_CHECKING:
    import psycopg

    from memex.storage.postgres.connection import Database

    Conn = psycopg.Connection[Any]

_MODEL_KEY = "vectors_model"
_DIMS_KEY = "vectors_dimensions"


def _meta(conn: Conn, key: str) -> str | None:
    row = conn.execute("SELECT value FROM memex_meta WHERE key = %s", (key,)).fetchone()
    return None if row is None else str(row[0])


_MODEL_SQL = "SELECT key, value FROM memex_meta WHERE key IN (%s, %s)"
_SIZE_SQL = "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM memories_seq"


def _model(rows: list[tuple[Any, ...]]) -> StoredVectors | None:
    found = dict(rows)
    model, dims = found.get(_MODEL_KEY), found.get(_DIMS_KEY)
    return None if model is None or dims is None else StoredVectors(str(model), int(dims))


def stored_model(conn: Conn) -> StoredVectors | None:
    """The model of the stored vectors; None for a store with no vectors yet."""
    return _model(conn.execute(_MODEL_SQL, (_MODEL_KEY, _DIMS_KEY)).fetchall())


def model_and_size(conn: Conn) -> tuple[StoredVectors | None, int]:
    """The stored model, and roughly how many memories the whole store holds: the highest
    key handed out (no tenant's rows are read)."""
    model = stored_model(conn)
    row = conn.execute(_SIZE_SQL).fetchone()
    return model, int(row[0]) if row else 0


def read_model_and_size(db: Database) -> tuple[StoredVectors | None, int]:
    """``model_and_size`` in one round trip."""
    meta, size = db.run(None, [(_MODEL_SQL, [_MODEL_KEY, _DIMS_KEY]), (_SIZE_SQL, [])])
    return _model(meta), int(size[0][0]) if size else 0


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
