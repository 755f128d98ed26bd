"""Sealed rows of the PostgreSQL store: an encrypted tenant's rows opened in this process
before they become memories (the server never holds a data key), and a plain tenant's
rows sealed in place (``memex admin encryption encrypt``), a batch per transaction."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.encryption import context_data
from memex.core.models import content_hash
from memex.storage.postgres.rows import STORED_COLUMNS

if TYPE_CHECKING:
    import psycopg

    from memex.storage.encryption import TenantCipher

CipherFor = Callable[[str], "TenantCipher"]
"""A tenant's cipher, its data key loaded if it was not yet."""

_ID, _TENANT, _CONTENT, _METADATA, _HASH, _VERSION, _SEALED = (
    STORED_COLUMNS.index(c)
    for c in ("id", "tenant", "content", "metadata", "content_hash", "version", "sealed_content")
)
TABLES = ("memories", "memory_history", "context_sessions")
"""The tables holding a tenant's text, in the order they are sealed."""


def opened(rows: list[Any], cipher_for: CipherFor) -> list[Any]:
    """Stored rows with every sealed value opened (the same list when none is sealed):
    content and metadata in their columns, the content hash the SHA-256 of the content,
    as a plain row has them."""
    if all(row[_SEALED] is None for row in rows):
        return rows
    return [
        row if row[_SEALED] is None else _open(row, cipher_for(str(row[_TENANT]))) for row in rows
    ]


def _open(row: Sequence[Any], cipher: TenantCipher) -> tuple[Any, ...]:
    mid, version = str(row[_ID]), int(row[_VERSION])
    content = cipher.open_memory(mid, version, "content", row[_SEALED])
    metadata = cipher.open_memory(mid, version, "metadata", row[_SEALED + 1])
    out = list(row)
    out[_CONTENT], out[_METADATA], out[_HASH] = content, json.loads(metadata), content_hash(content)
    out[_SEALED] = out[_SEALED + 1] = None
    return tuple(out)


def plain_count(conn: psycopg.Connection[Any], tenant: str) -> int:
    """How many of the tenant's rows still hold plain text."""
    row = conn.execute(
        "SELECT (SELECT count(*) FROM memories WHERE tenant = %s AND sealed_content IS NULL) "
        "+ (SELECT count(*) FROM memory_history WHERE tenant = %s AND sealed_content IS NULL) "
        "+ (SELECT count(*) FROM context_sessions WHERE tenant = %s AND sealed_text IS NULL)",
        (tenant, tenant, tenant),
    ).fetchone()
    return int(row[0]) if row else 0


def seal_batch(conn: psycopg.Connection[Any], cipher: TenantCipher, table: str, limit: int) -> int:
    """Seal up to ``limit`` plain rows of the tenant in ``table``; how many were sealed
    (0 when none is left). The postings stay: they are keyed by the row, not its text."""
    tenant = cipher.tenant
    if table == "context_sessions":
        found = conn.execute(
            "SELECT session, text FROM context_sessions WHERE tenant = %s "
            "AND sealed_text IS NULL LIMIT %s FOR UPDATE",
            (tenant, limit),
        ).fetchall()
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE context_sessions SET text = '', sealed_text = %s "
                "WHERE tenant = %s AND session = %s",
                [(cipher.seal(text, context_data(tenant, s)), tenant, s) for s, text in found],
            )
        return len(found)
    rows = conn.execute(
        f"SELECT id, version, content, metadata, content_hash FROM {table} "
        "WHERE tenant = %s AND sealed_content IS NULL LIMIT %s FOR UPDATE",
        (tenant, limit),
    ).fetchall()
    with conn.cursor() as cur:
        cur.executemany(
            f"UPDATE {table} SET content = '', metadata = '{{}}', content_hash = %s, "
            "sealed_content = %s, sealed_metadata = %s "
            "WHERE tenant = %s AND id = %s AND version = %s",
            [
                (
                    cipher.digest(chash),
                    cipher.seal_memory(mid, version, "content", content),
                    cipher.seal_memory(
                        mid,
                        version,
                        "metadata",
                        json.dumps(metadata, ensure_ascii=False, sort_keys=True),
                    ),
                    tenant,
                    mid,
                    version,
                )
                for mid, version, content, metadata, chash in rows
            ],
        )
    return len(rows)
