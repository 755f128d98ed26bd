"""Tenants' data keys in a PostgreSQL store (``tenant_keys``): which write is sealed, the
keys reads need (loaded once per process), metadata filters over sealed rows, master-key
rotation, destroying a key and encrypting a plain tenant (docs/security.md)."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from memex.core.encryption import Sealing, context_data, sealing
from memex.core.models import to_micros, utcnow
from memex.core.progress import Progress, Tally
from memex.core.query import Filters, metadata_matches
from memex.errors import StoreError, StoreKeyError
from memex.storage.encryption import KeyProvider, Keyring, StoredKey, TenantCipher
from memex.storage.postgres import sealing as rows
from memex.storage.postgres import sql

if TYPE_CHECKING:
    import psycopg

    from memex.storage.postgres.connection import Database

    Conn = psycopg.Connection[Any]

Run = Callable[..., Any]
_ENCRYPT_BATCH = 500
_SELECT = "SELECT data_key, key_id FROM tenant_keys WHERE tenant = %s"


def key_statement(tenant: str) -> tuple[str, list[Any]]:
    """A statement of the tenant's stored data key (no row: the tenant is plain)."""
    return _SELECT, [tenant]


def stored(conn: Conn, tenant: str) -> StoredKey | None:
    """The tenant's stored data key, if it has one."""
    row = conn.execute(_SELECT, (tenant,)).fetchone()
    return None if row is None else StoredKey(tenant, bytes(row[0]), str(row[1]))


def _insert(conn: Conn, key: StoredKey) -> bool:
    """Store a new data key; False when the tenant has one already (a writer raced)."""
    row = conn.execute(
        "INSERT INTO tenant_keys (tenant, data_key, key_id, created_at) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (tenant) DO NOTHING RETURNING tenant",
        (key.tenant, key.wrapped, key.key_id, to_micros(utcnow())),
    ).fetchone()
    return row is not None


def _made(conn: Conn, keyring: Keyring, tenant: str) -> TenantCipher:
    """A new data key for ``tenant``, or the one another writer made first."""
    key, cipher = keyring.new_key(tenant)
    if _insert(conn, key):
        return cipher
    found = stored(conn, tenant)
    if found is None:
        raise StoreError(f"tenant {tenant!r}'s data key could not be stored")
    return keyring.load(found)


def write_cipher(conn: Conn, keyring: Keyring, tenant: str) -> TenantCipher | None:
    """The key a write to ``tenant`` seals with (None: plain), read inside the write's
    transaction, so a key destroyed by another process stops sealing at once; a
    tenant's first write under a master key makes its key."""
    found = stored(conn, tenant)
    has_memories = False
    if found is None and keyring.provider is not None:
        query = "SELECT 1 FROM memories WHERE tenant = %s LIMIT 1"
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
    return _made(conn, keyring, tenant)


class ReadKeys:
    """The data keys reads need: a tenant's key is read from the store the first time
    one of its sealed values is met, then kept (until the process ends)."""

    def __init__(self, db: Database, keyring: Keyring) -> None:
        self._db = db
        self.keyring = keyring

    def cipher(self, tenant: str) -> TenantCipher:
        """The tenant's cipher, its key loaded now if needed."""
        found = self.keyring.cipher(tenant)
        if found is not None:
            return found
        [key] = self._db.run(tenant, [(_SELECT, [tenant])])
        if not key:
            self.keyring.forget(tenant)
            raise StoreKeyError(
                f"tenant {tenant!r}'s data key was destroyed: its encrypted memories cannot be read"
            )
        return self.keyring.load(StoredKey(tenant, bytes(key[0][0]), str(key[0][1])))

    def opened(self, found: list[Any]) -> list[Any]:
        """Stored rows with their sealed values opened."""
        return rows.opened(found, self.cipher)

    def content(self, tenant: str, mid: str, version: int, sealed: bytes | None, text: str) -> str:
        """A candidate's content: ``text``, or ``sealed`` opened."""
        if sealed is None:
            return text
        return self.cipher(tenant).open_memory(mid, version, "content", sealed)

    def context(self, tenant: str, session: str, text: str, sealed: bytes | None) -> str:
        """A saved context's text: ``text``, or ``sealed`` opened."""
        if sealed is None:
            return text
        what = f"session {session!r}'s context"
        return self.cipher(tenant).open(sealed, context_data(tenant, session), what)

    def digests(self, tenant: str, hashes: Sequence[str]) -> dict[str, str] | None:
        """Stored content hash -> content hash, for an encrypted tenant whose key is
        loaded (its hashes are keyed); None otherwise."""
        cipher = self.keyring.cipher(tenant)
        return None if cipher is None else {cipher.digest(h): h for h in hashes}

    def sealed_matches(self, filters: Filters) -> list[int] | None:
        """The keys of the scope's sealed rows whose metadata passes the filters'
        metadata filter (opened here: the server cannot read it); None when the tenant
        is plain or the filters have no metadata filter."""
        if not filters.metadata:
            return None
        tenant = str(filters.scope.tenant)
        if self.keyring.cipher(tenant) is None:
            [key] = self._db.run(tenant, [(_SELECT, [tenant])])
            if not key:
                return None
            self.keyring.load(StoredKey(tenant, bytes(key[0][0]), str(key[0][1])))
        cipher = self.cipher(tenant)
        where, params = sql.scope_clause(filters.scope)
        [found] = self._db.run(
            tenant,
            [
                (
                    "SELECT m.seq, m.id, m.version, m.sealed_metadata FROM memories m "
                    f"WHERE {where} AND m.sealed_metadata IS NOT NULL",
                    params,
                )
            ],
        )
        return [
            int(seq)
            for seq, mid, version, sealed in found
            if metadata_matches(
                json.loads(cipher.open_memory(mid, version, "metadata", sealed)),
                filters.metadata,
            )
        ]


class PostgresTenantKeys:
    """The data keys of a PostgreSQL store, for administration (``Store.tenant_keys``)."""

    def __init__(self, keyring: Keyring, read: Run, write: Run) -> None:
        self._keyring = keyring
        self._read = read
        self._write = write

    def encrypted(self) -> list[tuple[str, str]]:
        """Every encrypted tenant and the id of the master key its data key is wrapped by."""
        query = "SELECT tenant, key_id FROM tenant_keys ORDER BY tenant"
        found = self._read(None, lambda c: c.execute(query).fetchall(), all_tenants=True)
        return [(str(t), str(k)) for t, k in found]

    def rotate(self, new: KeyProvider) -> int:
        """Re-wrap every data key with ``new``, all in one transaction; returns how many.

        Each key is unwrapped with the store's configured master key first: a key it
        cannot unwrap stops the rotation with nothing changed.
        """

        def apply(conn: Conn) -> int:
            found = conn.execute(
                "SELECT tenant, data_key, key_id FROM tenant_keys ORDER BY tenant FOR UPDATE"
            ).fetchall()
            now = to_micros(utcnow())
            for tenant, wrapped, key_id in found:
                cipher = self._keyring.load(StoredKey(tenant, bytes(wrapped), key_id))
                conn.execute(
                    "UPDATE tenant_keys SET data_key = %s, key_id = %s, rotated_at = %s "
                    "WHERE tenant = %s",
                    (new.wrap(cipher.data_key(), tenant), new.key_id, now, tenant),
                )
            return len(found)

        count: int = self._write(None, apply, all_tenants=True)
        self._keyring.provider = new
        return count

    def destroy(self, tenant: str) -> bool:
        """Destroy the tenant's data key (crypto-shredding); whether it had one. Every
        sealed value of the tenant, in this store and in any copy, becomes unreadable."""
        query = "DELETE FROM tenant_keys WHERE tenant = %s"
        deleted: int = self._write(tenant, lambda c: c.execute(query, (tenant,)).rowcount)
        self._keyring.forget(tenant)
        return deleted > 0

    def encrypt(self, tenant: str, progress: Progress | None = None) -> int:
        """Seal a plain tenant's stored text (memories, past versions, saved contexts) in
        batches, each its own transaction; returns how many rows were sealed. Writes
        are sealed from the first batch on, so the work can be resumed after a stop."""

        def start(conn: Conn) -> TenantCipher:
            found = stored(conn, tenant)
            return self._keyring.load(found) if found else _made(conn, self._keyring, tenant)

        cipher: TenantCipher = self._write(tenant, start)
        total = self._read(tenant, lambda c: rows.plain_count(c, tenant))
        tally = Tally(progress, f"encrypting tenant {tenant}", total)
        done = 0
        for table in rows.TABLES:
            batch = functools.partial(
                rows.seal_batch, cipher=cipher, table=table, limit=_ENCRYPT_BATCH
            )
            while count := self._write(tenant, batch):
                done += count
                tally.advance(count)
        return done
