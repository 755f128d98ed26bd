"""A backup of a PostgreSQL store: a portable memex store file (SQLite format).

Every tenant's memories, their past versions and their vectors, the directory
(tenants, users, projects, API keys with their hashes) and the audit chains (entries
and heads as they are) are read in one REPEATABLE READ transaction (the store as it was
at one moment; writers go on) and written into a new SQLite store at the target, which
any memex opens as a store of its own, or restores from. Saved session contexts and
change counters are not copied: they are bookkeeping a new store starts without.

Encrypted tenants stay encrypted: their data keys are copied as they are stored
(wrapped by the master key), and their memories sealed again in the copy with the same
data keys, so the copy needs the same master key and never holds their text in the
clear. Backing up a store with encrypted tenants needs the master key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from memex.core.encryption import no_master_key
from memex.core.models import Scope
from memex.core.progress import Progress, Tally
from memex.errors import OutputError, StoreKeyError
from memex.storage.base import StoredVectors, WriteBatch
from memex.storage.encryption import StoredKey
from memex.storage.postgres import audit, rows, sql
from memex.storage.postgres.connection import Database, bind, configure, driver_errors, translate
from memex.storage.postgres.directory import copy_into

if TYPE_CHECKING:
    from memex.storage.postgres.keys import ReadKeys

_BATCH = 500


def backup(db: Database, target: Path, progress: Progress | None, keys: ReadKeys) -> int:
    """Copy every tenant's memories into the new store file ``target``; return how many
    (sealed values opened with ``keys`` and sealed again in the copy)."""
    from memex.storage.sqlite import SQLiteStore

    if target.exists() and target.stat().st_size > 0:
        raise OutputError(f"backup target {target} exists already")
    conn = db.connect()
    copy = None
    try:
        configure(conn)
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        bind(conn, None, all_tenants=True)
        # The directory too, from the same snapshot (its rows are visible only so).
        conn.execute("SELECT set_config('memex.directory', 'on', true)")
        found = dict(conn.execute("SELECT key, value FROM memex_meta").fetchall())
        total_row = conn.execute("SELECT count(*) FROM memories").fetchone()
        total = int(total_row[0]) if total_row else 0
        tally = Tally(progress, "copying")
        stored = [
            StoredKey(str(t), bytes(k), str(i))
            for t, k, i in conn.execute("SELECT tenant, data_key, key_id FROM tenant_keys")
        ]
        _check_keys(keys, stored)
        copy = SQLiteStore(target, master_key=keys.keyring.provider)
        for key in stored:
            copy.tenant_keys().adopt(key)
        copy_into(conn, copy.directory())
        log = copy.audit()
        for head in audit.heads(conn):  # the audit chains, as they are
            log.copy(audit.trail(conn, head.tenant, None, None))
        copied = 0
        if "vectors_model" in found:
            model = StoredVectors(str(found["vectors_model"]), int(found["vectors_dimensions"]))
            with conn.cursor(name="memex_backup") as cursor:
                cursor.execute(
                    f"SELECT {sql.COLUMNS}, m.embedding FROM {sql.ROWS} "
                    "ORDER BY m.tenant, m.created_at, m.seq"
                )
                while batch := cursor.fetchmany(_BATCH):
                    copied += _copy_batch(conn, copy, model, batch, keys)
                    tally.advance(len(batch))
        conn.execute("COMMIT")
        assert copied == total
        return copied
    except driver_errors() as exc:
        raise translate(exc, db.location) from exc
    finally:
        conn.close()
        if copy is not None:
            copy.close()


def _check_keys(keys: ReadKeys, stored: list[StoredKey]) -> None:
    """Refuse, before anything is written, a backup whose data keys this process cannot
    unwrap (no master key, or another one)."""
    for key in stored:
        if keys.keyring.provider is None:
            raise StoreKeyError(no_master_key(key.tenant) + " to back it up")
        keys.keyring.load(key)


def _copy_batch(
    conn: Any, copy: Any, model: StoredVectors, batch: list[Any], keys: ReadKeys
) -> int:
    """Write one batch of rows (and their past versions) into the copy, tenant by tenant."""
    by_tenant: dict[str, list[Any]] = {}
    for row in batch:
        by_tenant.setdefault(str(row[2]), []).append(row)
    for tenant, tenant_rows in by_tenant.items():
        ids = [str(r[1]) for r in tenant_rows]
        past = conn.execute(
            f"SELECT {sql.HISTORY_COLUMNS} FROM memory_history h "
            "WHERE h.tenant = %s AND h.id = ANY(%s) ORDER BY h.id, h.version",
            (tenant, ids),
        ).fetchall()
        memories = rows.memories(keys.opened([r[:-1] for r in tenant_rows]))
        inserts = [(m, r[-1].to_numpy()) for m, r in zip(memories, tenant_rows, strict=True)]
        copy.write(
            Scope(tenant=tenant),
            WriteBatch(inserts=inserts, history=rows.memories(keys.opened(past))),
            model,
        )
    return len(batch)
