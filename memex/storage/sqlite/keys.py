"""Tenants' data keys in a SQLite store (``tenant_keys``): which write is sealed, loading
a key a read needs, master-key rotation, destroying a key, encrypting a plain tenant."""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

from memex.core.encryption import Sealing, sealing
from memex.core.models import to_micros, utcnow
from memex.core.progress import Progress, Tally
from memex.errors import StoreKeyError
from memex.storage.encryption import KeyNeededError, KeyProvider, Keyring, StoredKey, TenantCipher
from memex.storage.sqlite.purge import merge_fulltext, truncate_wal

T = TypeVar("T")
Run = Callable[[Callable[[sqlite3.Connection], Any]], Any]
_ENCRYPT_BATCH = 500


def stored(conn: sqlite3.Connection, tenant: str) -> StoredKey | None:
    """The tenant's stored data key, if it has one."""
    row = conn.execute(
        "SELECT data_key, key_id FROM tenant_keys WHERE tenant = ?", (tenant,)
    ).fetchone()
    return None if row is None else StoredKey(tenant, bytes(row[0]), str(row[1]))


def _insert(conn: sqlite3.Connection, key: StoredKey) -> None:
    conn.execute(
        "INSERT INTO tenant_keys (tenant, data_key, key_id, created_at) VALUES (?, ?, ?, ?)",
        (key.tenant, key.wrapped, key.key_id, to_micros(utcnow())),
    )


def write_cipher(conn: sqlite3.Connection, keyring: Keyring, tenant: str) -> TenantCipher | None:
    """The key a write to ``tenant`` seals with (None: plain), read inside the write's
    transaction, so a key destroyed by another process stops the write; a tenant's
    first write under a master key makes its key."""
    found = stored(conn, tenant)
    has_memories = False
    if found is None and keyring.provider is not None:
        query = "SELECT 1 FROM memories WHERE tenant = ? LIMIT 1"
        has_memories = conn.execute(query, (tenant,)).fetchone() is not None
    decision = sealing(
        master_key=keyring.provider is not None,
        has_key=found is not None,
        has_memories=has_memories,
        tenant=tenant,
    )
    if decision is Sealing.PLAIN:
        return None
    if found is not None:
        return keyring.load(found)
    key, cipher = keyring.new_key(tenant)
    _insert(conn, key)
    return cipher


def load(conn: sqlite3.Connection, keyring: Keyring, tenant: str) -> None:
    """Load the key of a tenant whose sealed values a read met."""
    found = stored(conn, tenant)
    if found is None:
        keyring.forget(tenant)
        raise StoreKeyError(
            f"tenant {tenant!r}'s data key was destroyed: its encrypted memories cannot be read"
        )
    keyring.load(found)


def with_keys(keyring: Keyring, run: Callable[[], T], fetch: Callable[[str], None]) -> T:
    """``run()``, and again after ``fetch``-ing each tenant key a sealed value needed."""
    needed: set[str] = set()
    while True:
        try:
            return run()
        except KeyNeededError as exc:
            if exc.tenant in needed:
                raise StoreKeyError(f"tenant {exc.tenant!r}'s data key cannot be loaded") from exc
            needed.add(exc.tenant)
            fetch(exc.tenant)


class SQLiteTenantKeys:
    """The data keys of a SQLite store, for administration (``Store.tenant_keys``)."""

    def __init__(self, keyring: Keyring, run: Run, write: Run) -> None:
        self._keyring = keyring
        self._run = run
        self._write = write

    def encrypted(self) -> list[tuple[str, str]]:
        """Every encrypted tenant and the id of the master key its data key is wrapped by."""
        query = "SELECT tenant, key_id FROM tenant_keys ORDER BY tenant"
        rows: list[tuple[str, str]] = self._run(lambda c: c.execute(query).fetchall())
        return [(str(t), str(k)) for t, k in rows]

    def rotate(self, new: KeyProvider) -> int:
        """Re-wrap every data key with ``new``, all in one transaction; returns how many.

        Each key is unwrapped with the store's configured master key first: a key it
        cannot unwrap stops the rotation with nothing changed.
        """

        def apply(conn: sqlite3.Connection) -> int:
            rows = conn.execute("SELECT tenant, data_key, key_id FROM tenant_keys").fetchall()
            now = to_micros(utcnow())
            for tenant, wrapped, key_id in rows:
                cipher = self._keyring.load(StoredKey(tenant, bytes(wrapped), key_id))
                data_key = cipher.data_key()
                conn.execute(
                    "UPDATE tenant_keys SET data_key = ?, key_id = ?, rotated_at = ? "
                    "WHERE tenant = ?",
                    (new.wrap(data_key, tenant), new.key_id, now, tenant),
                )
            return len(rows)

        count: int = self._write(apply)
        self._keyring.provider = new
        return count

    def destroy(self, tenant: str) -> bool:
        """Destroy the tenant's data key (crypto-shredding); whether it had one.

        Every sealed value of the tenant, in this store and in any copy of it, becomes
        unreadable for good. Delete the tenant's memories first: removing a sealed row
        needs its text for the full-text index.
        """
        query = "DELETE FROM tenant_keys WHERE tenant = ?"
        deleted: int = self._write(lambda c: c.execute(query, (tenant,)).rowcount)
        self._keyring.forget(tenant)
        return deleted > 0

    def adopt(self, key: StoredKey) -> None:
        """Keep a tenant's data key as another store holds it, wrapped by the same master
        key (a backup into this store), so what this store seals opens with that key."""
        self._write(lambda c: _insert(c, key))

    def encrypt(self, tenant: str, progress: Progress | None = None) -> int:
        """Seal a plain tenant's stored text (memories, past versions, saved contexts) in
        batches, each its own transaction; returns how many rows were sealed. Writes
        are sealed from the first batch on, so the work can be resumed after a stop."""

        def start(conn: sqlite3.Connection) -> TenantCipher:
            found = stored(conn, tenant)
            if found is not None:
                return self._keyring.load(found)
            key, cipher = self._keyring.new_key(tenant)
            _insert(conn, key)
            return cipher

        cipher: TenantCipher = self._write(start)
        from memex.storage.sqlite import sealing as rows

        total = self._run(lambda c: rows.plain_count(c, tenant))
        tally = Tally(progress, f"encrypting tenant {tenant}", total)
        done = 0
        for table in rows.TABLES:
            while count := self._write(
                functools.partial(rows.seal_batch, cipher=cipher, table=table, limit=_ENCRYPT_BATCH)
            ):
                done += count
                tally.advance(count)
        if done:
            # Sealing a row rewrote its full-text entry (the same terms, deleted and added
            # again): merged into one segment, the index is as compact as before.
            self._write(merge_fulltext)
        # Until a checkpoint, the write-ahead log still holds the pages with plain text.
        self._run(lambda c: truncate_wal(c, 30_000))
        return done


def preload(conn: sqlite3.Connection, keyring: Keyring, tenant: str) -> TenantCipher | None:
    """The tenant's cipher, loaded now if it has a key (None: the tenant is plain)."""
    found = stored(conn, tenant)
    return None if found is None else keyring.load(found)
