"""Swapping in a new set of vectors after a reindex, and the HNSW index of the vectors.

A reindex embeds every memory into a temporary table of its own connection (gone with
the connection, whatever happens to the process), then swaps the vectors in one
transaction, refusing if a memory was written or changed meanwhile.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.models import content_hash
from memex.core.progress import Progress, Tally
from memex.errors import ConflictError
from memex.storage.base import StoredVectors, Vector
from memex.storage.postgres.connection import Database, bind, configure, driver_errors, translate
from memex.storage.postgres.model import set_model
from memex.storage.postgres.writes import checked

if TYPE_CHECKING:
    import psycopg

    from memex.storage.postgres.keys import ReadKeys

    Conn = psycopg.Connection[Any]


def hnsw_name(dims: int) -> str:
    return f"memories_embedding_hnsw_half_{int(dims)}"


def hnsw_dims(conn: Conn) -> int | None:
    """The dimensions of the HNSW index in place, if any."""
    row = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() "
        "AND tablename = 'memories' AND indexname LIKE 'memories_embedding_hnsw_half_%%'"
    ).fetchone()
    return int(str(row[0]).rsplit("_", 1)[1]) if row else None


def ensure_hnsw(conn: Conn) -> None:
    """Build the HNSW index (inner product) for the stored model's dimensions, once.

    The index holds half-precision copies (``halfvec``): at 100,000 memories it finds
    the same neighbours as one of single-precision vectors (recall@10 0.986 against
    0.985) in 0.61 of the room (docs/postgres.md); scores are still computed from the
    stored single-precision vectors."""
    row = conn.execute("SELECT value FROM memex_meta WHERE key = 'vectors_dimensions'").fetchone()
    if row is None:
        return
    dims = int(row[0])
    have = hnsw_dims(conn)
    if have == dims:
        return
    if have is not None:
        conn.execute(f"DROP INDEX IF EXISTS {hnsw_name(have)}")
    conn.execute(
        f"CREATE INDEX IF NOT EXISTS {hnsw_name(dims)} ON memories "
        f"USING hnsw ((embedding::halfvec({dims})) halfvec_ip_ops)"
    )


def _stored_hash(keys: ReadKeys, tenant: str, text: str, sealed: bytes | None) -> str:
    """A content hash as the memory's row holds it: keyed for a sealed row."""
    plain = content_hash(text)
    return plain if sealed is None else keys.cipher(tenant).digest(plain)


def replace(
    db: Database,
    model: StoredVectors,
    embed: Callable[[Sequence[str]], Vector],
    batch_size: int,
    progress: Progress | None,
    keys: ReadKeys,
) -> int:
    """Embed every memory of every tenant, a batch at a time, then swap the vectors in
    (an encrypted tenant's content opened with ``keys``, its hashes keyed)."""
    tally = Tally(progress, "embedding")
    dims = model.dimensions
    conn = db.connect()
    try:
        configure(conn)
        conn.execute(
            "CREATE TEMP TABLE staged (tenant text, seq bigint, content_hash text, "
            "embedding vector, PRIMARY KEY (tenant, seq))"
        )
        count = 0
        last = ("", 0)
        while True:
            with conn.transaction():
                bind(conn, None, all_tenants=True)
                found = conn.execute(
                    "SELECT tenant, seq, content, id, version, sealed_content FROM memories "
                    "WHERE (tenant, seq) > (%s, %s) ORDER BY tenant, seq LIMIT %s",
                    (*last, batch_size),
                ).fetchall()
            if not found:
                break
            last = (found[-1][0], found[-1][1])
            batch = [
                (tenant, seq, keys.content(tenant, mid, version, sealed, text), sealed)
                for tenant, seq, text, mid, version, sealed in found
            ]
            vectors = embed([str(row[2]) for row in batch])
            with conn.cursor() as cur:
                cur.executemany(
                    "INSERT INTO staged VALUES (%s, %s, %s, %s)",
                    [
                        (tenant, seq, _stored_hash(keys, tenant, text, sealed), checked(v, dims))
                        for (tenant, seq, text, sealed), v in zip(batch, vectors, strict=True)
                    ],
                )
            count += len(batch)
            tally.advance(len(batch))
        with conn.transaction():
            bind(conn, None, all_tenants=True)
            row = conn.execute(
                "SELECT count(*) FROM memories m LEFT JOIN staged s "
                "ON s.tenant = m.tenant AND s.seq = m.seq "
                "WHERE s.seq IS NULL OR s.content_hash <> m.content_hash"
            ).fetchone()
            stale = int(row[0]) if row else 0
            if stale:
                raise ConflictError(
                    f"{stale} memories were written or changed during the reindex; run it again"
                )
            had = hnsw_dims(conn)
            if had is not None:
                conn.execute(f"DROP INDEX IF EXISTS {hnsw_name(had)}")
            conn.execute(
                "UPDATE memories m SET embedding = s.embedding FROM staged s "
                "WHERE s.tenant = m.tenant AND s.seq = m.seq"
            )
            set_model(conn, model)
            if had is not None:
                ensure_hnsw(conn)
    except driver_errors() as exc:
        raise translate(exc, db.location) from exc
    finally:
        conn.close()
    return count
